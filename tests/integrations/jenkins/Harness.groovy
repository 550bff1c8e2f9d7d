// A Jenkins pipeline run without Jenkins: loads a shared library's vars/*.groovy as the
// global variables Jenkins makes of them, and runs a scripted pipeline against steps that
// do what Jenkins' do, for real:
//
//   sh              runs the script with `sh -xe` in the workspace (the agent's environment,
//                   env, and what withCredentials binds), its output in the console;
//                   returnStatus / returnStdout as in Jenkins, else a failure is an error
//   readJSON        (Pipeline Utility Steps) parses a workspace file
//   fileExists, echo, error, node, stage
//   withCredentials with string(credentialsId:, variable:): binds the secret as an
//                   environment variable for the body, masked as **** in the console
//   input           the manual judgment: approved (HARNESS_INPUT=abort rejects it)
//   env             the build's variables (from a JSON file), readable and settable
//
// groovy -cp stubs Harness.groovy WORKSPACE LIBRARY_VARS PIPELINE ENV_JSON CREDENTIALS_JSON
// prints the console; exit 0 and "Finished: SUCCESS", or exit 1 and "ERROR: <message>",
// "Finished: FAILURE" when a step fails the build.

import groovy.json.JsonSlurper

class BuildFailure extends RuntimeException {
    BuildFailure(String message) { super(message) }
}

def (workspacePath, libraryPath, pipelinePath, envPath, credentialsPath) = args as List
File workspace = new File(workspacePath)
Map env = new JsonSlurper().parse(new File(envPath)) as Map
Map credentials = new JsonSlurper().parse(new File(credentialsPath)) as Map
List masks = []

def log = { Object message ->
    String text = message.toString()
    masks.each { secret -> text = text.replace(secret, '****') }
    println text
}

Binding binding = new Binding()
binding.setVariable('env', env)
binding.setVariable('echo', { Object message -> log(message) })
binding.setVariable('error', { Object message -> throw new BuildFailure(message.toString()) })
binding.setVariable('node', { Object... arguments -> arguments[-1].call() })
binding.setVariable('stage', { String name, Closure body ->
    log("[Pipeline] stage (${name})")
    body.call()
})
binding.setVariable('fileExists', { String path -> new File(workspace, path).exists() })
binding.setVariable('readJSON', { Map arguments ->
    new JsonSlurper().parse(new File(workspace, arguments.file.toString()))
})
binding.setVariable('sh', { Object arguments ->
    Map options = arguments instanceof Map ? arguments : [script: arguments]
    File script = File.createTempFile('script', '.sh')
    script.deleteOnExit()
    script.text = options.script.toString()
    ProcessBuilder builder = new ProcessBuilder(['/bin/sh', '-xe', script.absolutePath])
    builder.directory(workspace)
    builder.redirectErrorStream(!options.returnStdout)
    env.each { name, value -> builder.environment().put(name.toString(), value.toString()) }
    Process process = builder.start()
    process.outputStream.close()
    String stdout = ''
    if (options.returnStdout) {
        Thread errors = Thread.start { process.errorStream.eachLine { log(it) } }
        stdout = process.inputStream.text
        errors.join()
    } else {
        process.inputStream.eachLine { log(it) }
    }
    int code = process.waitFor()
    script.delete()
    if (options.returnStatus) {
        return code
    }
    if (code != 0) {
        throw new BuildFailure("script returned exit code ${code}")
    }
    return options.returnStdout ? stdout : null
})
binding.setVariable('string', { Map arguments ->
    [credentialsId: arguments.credentialsId, variable: arguments.variable]
})
binding.setVariable('withCredentials', { List bindings, Closure body ->
    Map saved = [:]
    bindings.each { bound ->
        Object secret = credentials[bound.credentialsId]
        if (secret == null) {
            throw new BuildFailure("Could not find credentials entry with ID '${bound.credentialsId}'")
        }
        masks << secret.toString()
        saved[bound.variable] = env[bound.variable]
        env[bound.variable] = secret.toString()
    }
    try {
        return body.call()
    } finally {
        saved.each { name, value ->
            if (value == null) {
                env.remove(name)
            } else {
                env[name] = value
            }
        }
    }
})
binding.setVariable('input', { Object arguments ->
    String message = arguments instanceof Map ? arguments.message : arguments
    log("Input requested: ${message}")
    if (env.HARNESS_INPUT == 'abort') {
        throw new BuildFailure('Rejected by the harness')
    }
    log('Approved by the harness')
})

GroovyShell shell = new GroovyShell(this.class.classLoader, binding)
new File(libraryPath).eachFileMatch(~/.*\.groovy/) { File file ->
    Script library = shell.parse(file)
    library.binding = binding
    binding.setVariable(file.name - '.groovy', library)
}
// Jenkins loads the library that `@Library('treadle') _` names; here vars/ is loaded above.
String jenkinsfile = new File(pipelinePath).text.replaceAll(/(?m)^@Library\(.*\)\s*_\s*$/, '')
Script pipeline = shell.parse(jenkinsfile, 'Jenkinsfile')
pipeline.binding = binding
try {
    pipeline.run()
    log('Finished: SUCCESS')
} catch (BuildFailure failure) {
    log("ERROR: ${failure.message}")
    log('Finished: FAILURE')
    System.exit(1)
}
