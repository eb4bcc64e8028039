"""The ``resnet-deploy`` command line: thin typer commands over the ``resnet_deploy`` library.

Installed under the import name ``resnet_deploy_cli`` (see pyproject.toml) so that no generic
top-level ``cli`` module is put on users' paths.
"""
