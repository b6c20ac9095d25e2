package zkserver_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The clients no one here wrote, against the journal: kazoo's recipes, the
// Java client's zkCli.sh and Curator's recipes (each several competing
// clients in one process, so a JVM or an interpreter starts once).

func runClient(t *testing.T, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tail(string(out), 6000))
	}
	return string(out)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func TestKazooRecipes(t *testing.T) {
	if _, err := exec.LookPath("/usr/bin/python3"); err != nil {
		t.Fatal("Debian's python3 with python3-kazoo is required: run `make deps`")
	}
	out := runClient(t, 4*time.Minute, "/usr/bin/python3", "testdata/clients/kazoo_recipes.py",
		strings.Join(shared.addrs(), ","), testPath(t))
	for _, want := range []string{"ok Lock", "ok Election", "ok Semaphore", "ok Counter", "ok Barrier", "ok Queue",
		"ok Party", "ok DataWatch/ChildrenWatch", "ok TreeCache", "ok Ephemeral", "done"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("kazoo output lacks %q:\n%s", want, tail(out, 4000))
		}
	}
}

// TestZkCli drives the Java client's zkCli.sh (Debian's zookeeper package)
// through a script on stdin: one JVM, one session, the commands an operator
// types.
func TestZkCli(t *testing.T) {
	const zkCli = "/usr/share/zookeeper/bin/zkCli.sh"
	if _, err := exec.LookPath(zkCli); err != nil {
		t.Fatal("zkCli.sh from Debian's zookeeper package is required: run `make deps`")
	}
	p := testPath(t)
	script := strings.Join([]string{
		"create " + p + " hello",
		"create " + p + "/child c1",
		"create -s " + p + "/seq- s",
		"create -e " + p + "/eph e",
		"create -c " + p + "/box",
		"create -t 60000 " + p + "/ttl t",
		"get " + p,
		"set " + p + " world",
		"get -s " + p,
		"ls " + p,
		"stat " + p + "/child",
		"addauth digest bob:pw",
		"create " + p + "/bobs b auth:bob:pw:cdrwa",
		"getAcl " + p + "/bobs",
		"delete " + p + "/child",
		"ls -R " + p,
		"getAllChildrenNumber " + p,
		"getEphemerals " + p,
		"whoami",
		"sync " + p,
		"addWatch -m PERSISTENT_RECURSIVE " + p,
		"quit",
	}, "\n") + "\n"
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, zkCli, "-server", strings.Join(shared.addrs(), ","))
	cmd.Stdin = strings.NewReader(script)
	cmd.Env = append(cmd.Environ(), "CLIENT_JVMFLAGS=-Xmx64m -XX:TieredStopAtLevel=1", "ZOO_LOG_DIR="+t.TempDir())
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	if err != nil {
		t.Fatalf("zkCli.sh: %v\n%s", err, tail(out, 6000))
	}
	for _, want := range []string{
		"Created " + p,
		"Created " + p + "/seq-0000000001",
		"hello",
		"world",
		"dataVersion = 1",
		"[box, child, eph, seq-0000000001, ttl]",
		"'digest,'bob:",
		": cdrwa",
		p + "/bobs",
		"digest: bob",
		"[" + p + "/eph]",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("zkCli output lacks %q:\n%s", want, tail(out, 6000))
		}
	}
	for _, bad := range []string{"KeeperErrorCode", "Exception"} {
		if strings.Contains(out, bad) {
			t.Errorf("zkCli reported an error (%s):\n%s", bad, tail(out, 6000))
		}
	}
}

// curatorClasspath is Debian's Curator (libcurator-*-java), ZooKeeper's
// client and what they need.
var curatorClasspath = strings.Join([]string{
	"/usr/share/java/curator-framework.jar", "/usr/share/java/curator-client.jar", "/usr/share/java/curator-recipes.jar",
	"/usr/share/java/zookeeper.jar", "/usr/share/java/guava.jar", "/usr/share/java/slf4j-api.jar", "/usr/share/java/slf4j-nop.jar",
}, ":")

// TestCuratorRecipes compiles a small driver with Debian's JDK against
// Debian's Curator jars and runs its recipes with four competing clients.
func TestCuratorRecipes(t *testing.T) {
	for _, need := range []string{"javac", "java"} {
		if _, err := exec.LookPath(need); err != nil {
			t.Fatalf("%s from Debian's default-jdk-headless is required: run `make deps`", need)
		}
	}
	for _, jar := range strings.Split(curatorClasspath, ":") {
		if _, err := exec.LookPath(jar); err != nil && !fileExists(jar) {
			t.Fatalf("%s is missing: Debian's libcurator-framework-java and libcurator-recipes-java are required: run `make deps`", jar)
		}
	}
	dir := t.TempDir()
	runClient(t, 2*time.Minute, "javac", "-d", dir, "-cp", curatorClasspath, "testdata/clients/CuratorRecipes.java")
	out := runClient(t, 4*time.Minute, "java", "-Xmx128m", "-XX:TieredStopAtLevel=1", "-cp", dir+":"+curatorClasspath,
		"CuratorRecipes", strings.Join(shared.addrs(), ","), testPath(t))
	for _, want := range []string{"ok InterProcessMutex", "ok LeaderLatch", "ok CuratorCache", "ok PersistentNode", "done"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("Curator output lacks %q:\n%s", want, tail(out, 4000))
		}
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
