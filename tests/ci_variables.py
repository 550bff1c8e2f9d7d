"""The variables each CI system sets in a job, as its documentation names them, and the
provenance treadle should read from them (treadle.ci.provenance).

- GitHub Actions: "Variables" reference (GITHUB_SERVER_URL, GITHUB_REPOSITORY,
  GITHUB_RUN_ID, GITHUB_RUN_ATTEMPT, GITHUB_SHA, GITHUB_REF, GITHUB_ACTOR).
- GitLab CI/CD: "Predefined CI/CD variables" (CI_JOB_URL, CI_COMMIT_SHA,
  CI_COMMIT_REF_NAME, GITLAB_USER_LOGIN, CI_PIPELINE_ID, CI_JOB_NAME).
- Jenkins: "env-vars.html" (JENKINS_URL, BUILD_URL, BUILD_TAG, GIT_COMMIT from the Git
  plugin, BRANCH_NAME in a multibranch pipeline, BUILD_USER_ID from the build-user-vars
  plugin).
"""

from __future__ import annotations

COMMIT = "3f786850e387550fdab836ed7e6dc881de23001b"

GITHUB = {
    "CI": "true",
    "GITHUB_ACTIONS": "true",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "acme/web",
    "GITHUB_RUN_ID": "7001",
    "GITHUB_RUN_ATTEMPT": "2",
    "GITHUB_JOB": "deploy",
    "GITHUB_SHA": COMMIT,
    "GITHUB_REF": "refs/heads/main",
    "GITHUB_ACTOR": "octocat",
}
GITLAB = {
    "CI": "true",
    "GITLAB_CI": "true",
    "CI_SERVER_URL": "https://gitlab.example",
    "CI_PIPELINE_ID": "551",
    "CI_PIPELINE_URL": "https://gitlab.example/acme/web/-/pipelines/551",
    "CI_JOB_NAME": "deploy",
    "CI_JOB_URL": "https://gitlab.example/acme/web/-/jobs/8812",
    "CI_COMMIT_SHA": COMMIT,
    "CI_COMMIT_REF_NAME": "main",
    "GITLAB_USER_LOGIN": "alice",
}
JENKINS = {
    "JENKINS_URL": "https://jenkins.example/",
    "BUILD_URL": "https://jenkins.example/job/web/job/main/12/",
    "BUILD_TAG": "jenkins-web-main-12",
    "STAGE_NAME": "Deploy",
    "GIT_COMMIT": COMMIT,
    "BRANCH_NAME": "main",
    "BUILD_USER_ID": "bob",
}

# What a result's `provenance` (and find-image's `deployed`) says for each.
EXPECTED = {
    "github": {
        "ci": "github",
        "run_url": "https://github.com/acme/web/actions/runs/7001/attempts/2",
        "commit": COMMIT,
        "ref": "refs/heads/main",
        "actor": "octocat",
    },
    "gitlab": {
        "ci": "gitlab",
        "run_url": "https://gitlab.example/acme/web/-/jobs/8812",
        "commit": COMMIT,
        "ref": "main",
        "actor": "alice",
    },
    "jenkins": {
        "ci": "jenkins",
        "run_url": "https://jenkins.example/job/web/job/main/12/",
        "commit": COMMIT,
        "ref": "main",
        "actor": "bob",
    },
}
SYSTEMS = {"github": GITHUB, "gitlab": GITLAB, "jenkins": JENKINS}
