// treadle as a Jenkins shared library (this repository, loaded with `@Library('treadle') _`):
// one step per stage, named parameters for its options, the result as a Map.
//
//   def found = treadle.findImage(cluster: 'web-prod', region: '/prod', credentialsId: 'dcos-token')
//   def deployed = treadle.deploy(cluster: 'web-prod', region: '/prod',
//       image: "${found.repository}:${env.GIT_COMMIT}", strategy: 'red-black',
//       rollbackOnFailure: true, credentialsId: 'dcos-token')
//   treadle.runJob(jobId: 'web.migrate', image: deployed.image, cmd: './manage.py migrate',
//       env: [SERVER_GROUP: deployed.server_group], credentialsId: 'dcos-token')
//
// A parameter is the option in camelCase (rollbackOnFailure is --rollback-on-failure):
// true sets a flag, false or null leaves it out, a list repeats it (region: ['/eu', '/us']),
// a map gives KEY=VALUE pairs (env:, context:). A parameter the stage does not take stops
// the build before anything runs. Every argument reaches treadle single-quoted, so no value
// is ever read by the shell: quotes, $(...), backticks, `;` and line breaks stay values.
//
// credentialsId names a Secret text credential holding the DC/OS token: it reaches treadle
// as DCOS_ACS_TOKEN through withCredentials, never on the command line (token: and
// password: are refused as parameters). Needs the Pipeline Utility Steps (readJSON) and
// Credentials Binding plugins, and `treadle` on PATH (treadle's image as the agent, or
// `pip install treadle`).
//
// The result is read from --output (default treadle-<stage>.json, left in the workspace).
// A stage that does not succeed fails the build with treadle's one-line error; its result
// stays in that file and in treadle.lastResult(), for a `catch` or `post { failure }`.

import com.cloudbees.groovy.cps.NonCPS
import groovy.transform.Field

// The options every stage takes, then each stage's own (tests/test_ci_files.py holds
// these to the CLI).
@Field final List COMMON = [
    'provider', 'marathon-url', 'metronome-url', 'dcos-url', 'username',
    'service-account-uid', 'service-account-key', 'ca-cert', 'insecure', 'request-timeout',
    'no-events', 'context', 'output', 'dotenv', 'timeout', 'no-wait', 'dry-run', 'quiet',
    'verbose', 'log-format',
]
@Field final List CHANGES = [
    'window', 'timezone', 'outside-window', 'jitter', 'min-capacity-ratio', 'lock-timeout',
    'run-key', 'drain', 'keep-running',
]
@Field final Map STAGES = [
    'find-image': ['cluster', 'region', 'selection', 'include-disabled', 'image-pattern'],
    'deploy': CHANGES + ['app', 'stack', 'detail', 'cluster', 'region', 'image', 'spec',
                         'service', 'instances', 'strategy', 'canary-instances',
                         'canary-percent', 'steps', 'max-remaining', 'delay-before-disable',
                         'network', 'verify', 'rollback-on-failure', 'destroy-failed'],
    'clone': CHANGES + ['source', 'cluster', 'target', 'app', 'stack', 'detail', 'region',
                        'image', 'spec', 'instances', 'strategy', 'steps', 'max-remaining',
                        'delay-before-disable', 'network', 'rollback-on-failure',
                        'destroy-failed'],
    'resize': CHANGES + ['region', 'server-group', 'cluster', 'target', 'instances',
                         'scale-up', 'scale-down', 'scale-pct', 'scale-to-cluster', 'force'],
    'destroy': CHANGES + ['region', 'server-group', 'cluster', 'target', 'force'],
    'disable': CHANGES + ['region', 'server-group', 'cluster', 'target', 'force'],
    'enable': CHANGES + ['region', 'server-group', 'cluster', 'target'],
    'rollback': CHANGES + ['cluster', 'region', 'to'],
    'promote': CHANGES + ['cluster', 'region'],
    'abort': CHANGES + ['cluster', 'region', 'destroy'],
    'disable-cluster': CHANGES + ['cluster', 'region', 'remaining-enabled', 'prefer-larger',
                                  'exclude', 'continue-if-cluster-not-found', 'force'],
    'scale-down-cluster': CHANGES + ['cluster', 'region', 'remaining-full-size',
                                     'prefer-larger', 'allow-scale-down-active', 'exclude',
                                     'continue-if-cluster-not-found', 'force'],
    'shrink-cluster': CHANGES + ['cluster', 'region', 'shrink-to', 'retain-larger',
                                 'allow-delete-active', 'exclude',
                                 'continue-if-cluster-not-found', 'force'],
    'terminate-instances': CHANGES + ['region', 'server-group', 'cluster', 'target',
                                      'instance', 'count', 'random', 'decrement', 'force'],
    'check-preconditions': ['region', 'expression', 'cluster-size', 'comparison', 'expected',
                            'only-enabled'],
    'run-job': ['job-id', 'image', 'cmd', 'env', 'cpus', 'mem', 'spec', 'service',
                'output-file'],
    'verify': ['url', 'path', 'requests', 'concurrency', 'duration', 'expect-status',
               'body-contains', 'min-success-ratio', 'max-p95'],
]
// Secrets on a command line end up in logs and process lists.
@Field final List SECRETS = ['token', 'password']

@Field Map last = [:]

Map findImage(Map parameters = [:]) { run('find-image', parameters) }
Map deploy(Map parameters = [:]) { run('deploy', parameters) }
Map clone(Map parameters = [:]) { run('clone', parameters) }
Map resize(Map parameters = [:]) { run('resize', parameters) }
Map destroy(Map parameters = [:]) { run('destroy', parameters) }
Map disable(Map parameters = [:]) { run('disable', parameters) }
Map enable(Map parameters = [:]) { run('enable', parameters) }
Map rollback(Map parameters = [:]) { run('rollback', parameters) }
Map promote(Map parameters = [:]) { run('promote', parameters) }
Map abort(Map parameters = [:]) { run('abort', parameters) }
Map disableCluster(Map parameters = [:]) { run('disable-cluster', parameters) }
Map scaleDownCluster(Map parameters = [:]) { run('scale-down-cluster', parameters) }
Map shrinkCluster(Map parameters = [:]) { run('shrink-cluster', parameters) }
Map terminateInstances(Map parameters = [:]) { run('terminate-instances', parameters) }
Map checkPreconditions(Map parameters = [:]) { run('check-preconditions', parameters) }
Map runJob(Map parameters = [:]) { run('run-job', parameters) }
Map verify(Map parameters = [:]) { run('verify', parameters) }

// treadle('deploy', cluster: 'web-prod', ...): the stage by its CLI name.
Map call(Map parameters, String stage) { run(stage, parameters) }
Map call(String stage, Map parameters = [:]) { run(stage, parameters) }

// The result of the last stage run, whether it succeeded or not.
Map lastResult() { last }

Map run(String stage, Map parameters) {
    Map options = new LinkedHashMap(parameters)
    String credentialsId = options.remove('credentialsId')
    String problem = invalid(stage, options)
    if (problem) {
        error("treadle ${stage}: ${problem}")
    }
    String output = options.output ? options.output.toString() : "treadle-${stage}.json"
    options.output = output
    String script = command(stage, options)
    int code
    if (credentialsId) {
        withCredentials([string(credentialsId: credentialsId, variable: 'DCOS_ACS_TOKEN')]) {
            code = sh(script: script, returnStatus: true)
        }
    } else {
        code = sh(script: script, returnStatus: true)
    }
    Map result = fileExists(output) ? readJSON(file: output) : [:]
    last = result
    if (code != 0) {
        error("treadle ${stage}: ${oneLine(result.error?.message ?: 'no result')} " +
              "(exit ${code}; result in ${output})")
    }
    return result
}

// Why these parameters cannot be run as `stage`, or null.
@NonCPS
String invalid(String stage, Map options) {
    if (!STAGES.containsKey(stage)) {
        return "no such stage (one of ${STAGES.keySet().join(', ')})"
    }
    List takes = COMMON + STAGES[stage]
    List secrets = options.keySet().findAll { SECRETS.contains(flagName(it.toString())) }.toList()
    if (secrets) {
        return "pass ${secrets.join(', ')} with credentialsId (withCredentials), never as a parameter"
    }
    List unknown = options.keySet().findAll { !takes.contains(flagName(it.toString())) }.toList()
    if (unknown) {
        String named = takes.collect { parameterName(it) }.sort().join(', ')
        return "unknown parameter ${unknown.join(', ')} (${stage} takes ${named}, credentialsId)"
    }
    return null
}

// The shell command: every word single-quoted.
@NonCPS
String command(String stage, Map options) {
    List words = ['treadle', stage]
    options.each { name, value -> words.addAll(flags(flagName(name.toString()), value)) }
    return words.collect { quote(it.toString()) }.join(' ')
}

@NonCPS
List flags(String name, value) {
    String flag = "--${name}"
    if (value == null || value == false) {
        return []
    }
    if (value == true) {
        return [flag]
    }
    if (value instanceof Map) {
        return value.collectMany { k, v -> [flag, "${k}=${v}".toString()] }
    }
    if (value instanceof Collection) {
        return value.collectMany { [flag, it.toString()] }
    }
    return [flag, value.toString()]
}

// rollbackOnFailure -> rollback-on-failure, and back.
@NonCPS
String flagName(String parameter) {
    parameter.replaceAll(/([A-Z])/) { all, letter -> '-' + letter.toLowerCase() }
}

@NonCPS
String parameterName(String flag) {
    flag.replaceAll(/-([a-z])/) { all, letter -> letter.toUpperCase() }
}

// 'it'\''s': inside single quotes the shell reads nothing; a quote ends them, is escaped,
// and they start again.
@NonCPS
String quote(String word) {
    "'" + word.replace("'", "'\\''") + "'"
}

@NonCPS
String oneLine(String message) {
    message.readLines().collect { it.trim() }.findAll { it }.join(' ')
}
