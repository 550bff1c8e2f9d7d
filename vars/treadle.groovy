// treadle as a step of a Jenkins shared library (this repository, loaded with
// `@Library('treadle') _`): runs one stage and returns its result as a map.
//
//   def found = treadle('find-image', '--cluster web-prod --region /prod')
//   treadle('deploy', "--cluster web-prod --image ${found.repository}:${env.GIT_COMMIT}")
//
// `treadle` must be on PATH: the treadle image as the agent, or `pip install treadle`.
// A stage that does not succeed fails the build with its one-line error; its result
// stays in treadle-<stage>.json.
def call(String stage, String args = '') {
  String output = "treadle-${stage}.json"
  int code = sh(script: "treadle ${stage} ${args} --output '${output}'", returnStatus: true)
  def result = fileExists(output) ? readJSON(file: output) : [:]
  if (code != 0) {
    error("treadle ${stage}: ${result.error?.message ?: "exit ${code}"} (exit ${code}, ${output})")
  }
  return result
}
