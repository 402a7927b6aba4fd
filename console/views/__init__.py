"""The console's pages, one module per area of the tenant console, plus sign-in and staff."""
