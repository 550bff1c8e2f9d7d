"""One module per stage: its options, turned into the stage's request. Importing this
package registers every stage on the command line."""

from treadle.cli.commands import deploy, destroy, enable_disable, find_image, resize, run_job

__all__ = ["deploy", "destroy", "enable_disable", "find_image", "resize", "run_job"]
