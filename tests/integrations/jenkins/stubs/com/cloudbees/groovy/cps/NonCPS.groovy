package com.cloudbees.groovy.cps

import java.lang.annotation.ElementType
import java.lang.annotation.Retention
import java.lang.annotation.RetentionPolicy
import java.lang.annotation.Target

// Jenkins' marker for a method its CPS transformation leaves as plain Groovy (the
// workflow-cps plugin's own annotation); plain Groovy runs every method that way.
@Retention(RetentionPolicy.RUNTIME)
@Target(ElementType.METHOD)
@interface NonCPS {
}
