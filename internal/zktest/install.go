package zktest

import (
	"archive/zip"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Environment variables that override the lookup done by Find.
const (
	// EnvJava names the java executable to run instead of $JAVA_HOME/bin/java
	// or the java found in PATH.
	EnvJava = "ZK2RAFT_JAVA"
	// EnvClasspath replaces the Debian classpath entirely. It is a
	// PATH-style list (entries separated by os.PathListSeparator) and is
	// passed to java -cp verbatim, so "dir/*" entries work. It must contain
	// ZooKeeper, its dependencies and, to get a server log, an SLF4J binding.
	EnvClasspath = "ZK2RAFT_ZK_CLASSPATH"
)

// debianJavaDir is where Debian installs jars. zookeeper.jar's manifest
// Class-Path names its dependencies there by absolute path, so the JVM
// resolves them without us listing them.
const debianJavaDir = "/usr/share/java"

// ErrNotInstalled is returned by Find, and so by Start and New, when no Java
// runtime or no ZooKeeper 3.8 jars are found. Tests fail on it; they never skip.
var ErrNotInstalled = errors.New("zktest: ZooKeeper 3.8 (Debian package `zookeeper`) and a Java runtime are required: run `make deps`")

// Install describes the Java runtime and ZooKeeper classpath used to run servers.
type Install struct {
	// Java is the path of the java executable.
	Java string
	// Classpath is passed to java -cp, joined with os.PathListSeparator.
	Classpath []string
	// Version is ZooKeeper's version read from the jar ("3.8.0"), or "" when
	// an overriding classpath does not reveal it.
	Version string
}

// ClasspathString returns the classpath as java -cp expects it.
func (in Install) ClasspathString() string {
	return strings.Join(in.Classpath, string(os.PathListSeparator))
}

// Find locates java and the ZooKeeper jars.
//
// Java: $ZK2RAFT_JAVA, else $JAVA_HOME/bin/java, else java in PATH.
// Classpath: $ZK2RAFT_ZK_CLASSPATH verbatim, else Debian's layout: only
// /usr/share/java/zookeeper.jar (its manifest pulls in jute, netty, jetty,
// jackson, snappy, metrics, commons-*) plus slf4j-log4j12.jar and
// log4j-1.2.jar, because the manifest carries no SLF4J binding and without one
// the server logs nothing at all.
//
// Any failure wraps ErrNotInstalled.
func Find() (Install, error) {
	java, err := findJava()
	if err != nil {
		return Install{}, fmt.Errorf("%w: %v", ErrNotInstalled, err)
	}
	cp, version, err := findClasspath()
	if err != nil {
		return Install{}, fmt.Errorf("%w: %v", ErrNotInstalled, err)
	}
	return Install{Java: java, Classpath: cp, Version: version}, nil
}

func findJava() (string, error) {
	if p := os.Getenv(EnvJava); p != "" {
		if err := checkExecutable(p); err != nil {
			return "", fmt.Errorf("%s: %v", EnvJava, err)
		}
		return p, nil
	}
	if home := os.Getenv("JAVA_HOME"); home != "" {
		p := filepath.Join(home, "bin", "java")
		if checkExecutable(p) == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("java")
	if err != nil {
		return "", fmt.Errorf("java not found in PATH: %v", err)
	}
	return p, nil
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

func findClasspath() ([]string, string, error) {
	if v := os.Getenv(EnvClasspath); v != "" {
		cp := filepath.SplitList(v)
		jars := expandClasspath(cp)
		if len(jars) == 0 {
			return nil, "", fmt.Errorf("%s=%q names no existing file or directory", EnvClasspath, v)
		}
		version := jarsVersion(jars)
		if version != "" {
			if err := checkVersion(version); err != nil {
				return nil, "", fmt.Errorf("%s: %v", EnvClasspath, err)
			}
		}
		return cp, version, nil
	}

	zk := filepath.Join(debianJavaDir, "zookeeper.jar")
	if _, err := os.Stat(zk); err != nil {
		return nil, "", fmt.Errorf("no ZooKeeper jar: %v", err)
	}
	version, err := jarVersion(zk)
	if err != nil {
		return nil, "", err
	}
	if err := checkVersion(version); err != nil {
		return nil, "", fmt.Errorf("%s: %v", zk, err)
	}
	cp := []string{zk}
	// Both are Depends of libzookeeper-java; tolerate their absence (the
	// server still runs, silently) rather than refuse to start.
	binding := []string{filepath.Join(debianJavaDir, "slf4j-log4j12.jar"), filepath.Join(debianJavaDir, "log4j-1.2.jar")}
	if exists(binding[0]) && exists(binding[1]) {
		cp = append(cp, binding...)
	}
	return cp, version, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// expandClasspath returns the existing files and directories named by cp,
// expanding java's "dir/*" wildcard to the jars in dir.
func expandClasspath(cp []string) []string {
	var out []string
	for _, e := range cp {
		if strings.HasSuffix(e, "*") {
			m, _ := filepath.Glob(filepath.Join(strings.TrimSuffix(e, "*"), "*.jar"))
			out = append(out, m...)
			continue
		}
		if exists(e) {
			out = append(out, e)
		}
	}
	return out
}

// jarsVersion returns the version of the first ZooKeeper server jar among jars.
func jarsVersion(jars []string) string {
	for _, j := range jars {
		if !strings.HasPrefix(filepath.Base(j), "zookeeper") || !strings.HasSuffix(j, ".jar") {
			continue
		}
		if v, err := jarVersion(j); err == nil {
			return v
		}
	}
	return ""
}

// jarVersion reads the version Maven recorded in a ZooKeeper jar.
func jarVersion(jar string) (string, error) {
	zr, err := zip.OpenReader(jar)
	if err != nil {
		return "", fmt.Errorf("open %s: %v", jar, err)
	}
	defer zr.Close()
	f, err := zr.Open("META-INF/maven/org.apache.zookeeper/zookeeper/pom.properties")
	if err != nil {
		return "", fmt.Errorf("%s is not a ZooKeeper server jar: %v", jar, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 64<<10))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "version="); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("%s: no version in pom.properties", jar)
}

// checkVersion accepts ZooKeeper 3.8 and later 3.x releases.
func checkVersion(v string) error {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) >= 2 {
		major, err1 := strconv.Atoi(parts[0])
		minor, err2 := strconv.Atoi(parts[1])
		if err1 == nil && err2 == nil && major == 3 && minor >= 8 {
			return nil
		}
	}
	return fmt.Errorf("ZooKeeper %s found, need 3.8 or a later 3.x", v)
}
