"""The `zixly` command (entry point `zixly_cli.main:main`): one module per command group.

    main.py      the root group; adds every group below
    common.py    what the groups share: ZIXLY_HOME, booting the runtime, option checks, metrics folders
    tenants.py   zixly tenants create|list|suspend|resume|archive|restore|move|move-cleanup
    db.py        zixly db upgrade|status|pool
    shards.py    zixly shards list|add|accept|distribute
    auth.py      zixly auth token
    keys.py      zixly keys generate|rotate
    openapi.py   zixly openapi [write|check]
    workers.py   zixly worker, zixly beat
    outbound.py  zixly outbound
    inbox.py     zixly inbox
    aws.py       zixly aws bootstrap
    dev.py       zixly dev (`make run`), on the development stack of devstack/

An entry point beside api/ and workers/: nothing imports it, and the groups never import main.py.
(Not named `cli`: python-hcl2, a dev dependency, installs a top-level package of that name.)
"""
