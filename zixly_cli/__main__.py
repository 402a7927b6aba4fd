"""`python -m zixly_cli` is the `zixly` command."""
from zixly_cli.main import main

main()
