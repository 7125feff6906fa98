"""neurorl-toy: a task family installed as a plug-in (entry point `neurorl.families`, name `toy`)."""
