"""The console: server-rendered pages for tenant admins and Zixly staff, an entry point beside the API.

It calls the same core services the API calls (never the API over HTTP) and checks the API's roles on the
server for every action. `console.app.create_app` is the whole site: the API plus the console.
"""
