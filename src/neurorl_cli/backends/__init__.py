"""The engines' old home (before families and engines became plug-ins), kept so that what was
saved naming it still loads: stable-baselines3 pickles a policy's classes by module path."""
