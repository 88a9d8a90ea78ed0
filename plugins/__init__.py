"""Local Python plugins: every module here that defines `plugin = PythonPlugin(...)` is one.

Tenants enable a plugin with PUT /api/plugins/{name}/toggle; its tools are then named
`<plugin>__<tool>` for the agents that list them (docs/tools.md). Modules whose name starts with
an underscore are skipped. Plugins packaged elsewhere register under the `agentplatform.plugins`
entry point group instead.
"""
