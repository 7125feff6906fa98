"""Training engines, one package each, found through neurorl_cli.plugins."""
