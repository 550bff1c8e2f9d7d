"""The provider contract: the same scenarios for every provider.

A provider's test module subclasses `ProviderContract` (the seam, called directly) and
`StageContract` (the stages, run through the CLI as a CI step runs them) and supplies the
fixtures below. Passing both means a stage means the same thing on that provider.

Fixtures a subclass provides:
    connection_args  list[str]: the CLI options that reach the provider
    provider         a connected Provider (the seam), closed afterwards
    region           a region name in the provider's form
    image, image_v2  two images that run and become healthy
    unhealthy_image  an image whose instances never become healthy

A provider that runs jobs also subclasses `JobContract` (run-job; its own fixtures and
hooks are in contract/job_contract.py). An engine provider (Docker, Swarm) also
subclasses `ComposeContract`: a Compose service with a sidecar, a volume and an env file.
Every provider subclasses `ProvenanceContract` (and a job runner `JobProvenanceContract`):
what a CI run deploys says which run, commit and actor it came from.
"""

from contract.compose_contract import ComposeContract
from contract.job_contract import JobContract
from contract.provenance_contract import JobProvenanceContract, ProvenanceContract
from contract.provider_contract import ProviderContract
from contract.stage_contract import StageContract

__all__ = [
    "ComposeContract",
    "JobContract",
    "JobProvenanceContract",
    "ProvenanceContract",
    "ProviderContract",
    "StageContract",
]
