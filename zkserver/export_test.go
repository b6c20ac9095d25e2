package zkserver

// JavaX500Name is javaX500Name, for the tests that compare it with Java's.
var JavaX500Name = javaX500Name
