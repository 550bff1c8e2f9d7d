from dockerish import *  # noqa: F403  (the engine fixtures)
