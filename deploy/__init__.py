"""Putting the system on a machine: the trial launcher (`make run`,
deploy/trial.py), the installer of a server (`make install`,
deploy/install.py, with its systemd units), and the configuration both build
from site.json (deploy/site.py, deploy/nginx.py and its templates). It runs
from the repository's checkout and is not part of the installed service."""
