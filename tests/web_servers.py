"""Self-contained nginx and Apache configurations for the web kits' tests: one page from
`docs`, pid file and logs in `run`, listening on the given ADDRESS:PORT pairs. They need
none of Debian's /etc/nginx or /etc/apache2 (nor /etc/apache2/envvars' variables)."""

from __future__ import annotations

from pathlib import Path

APACHE_MODULES = Path("/usr/lib/apache2/modules")


def nginx_conf(listen: list[str], docs: Path, run: Path, proxy_to: str | None = None) -> str:
    """With `proxy_to` (a URL), nginx passes every request there instead of serving docs."""
    # user root: the tests' directories may be private to root
    listens = "".join(f"        listen {where};\n" for where in listen)
    serve = f"location / {{ proxy_pass {proxy_to}; }}" if proxy_to else f"root {docs};"
    return f"""user root;
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/nginx-error.log;
events {{ worker_connections 64; }}
http {{
    access_log {run}/nginx-access.log;
    server {{
{listens}        {serve}
    }}
}}
"""


def apache_conf(listen: list[str], docs: Path, run: Path) -> str:
    """Apache's workers run as www-data (it refuses root): `docs` must be readable by it."""
    modules = "".join(f"LoadModule {name}_module {APACHE_MODULES}/mod_{name}.so\n"
                      for name in ("mpm_event", "authz_core", "dir"))
    listens = "".join(f"Listen {where}\n" for where in listen)
    return f"""{modules}ServerName tutela-test
User www-data
Group www-data
PidFile {run}/apache.pid
DefaultRuntimeDir {run}
ErrorLog {run}/apache-error.log
{listens}DocumentRoot {docs}
<Directory {docs}>
    Require all granted
</Directory>
"""
