package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kanto-can/kanto-can/internal/daemon"
)

// execute runs the command line with a stand-in for the daemon and
// returns the config it would have run with (nil when it did not run).
func execute(t *testing.T, args ...string) (*daemon.Config, string, error) {
	t.Helper()
	var ran *daemon.Config
	saved, savedPolicy := runDaemon, defaultPolicy
	runDaemon = func(_ context.Context, cfg daemon.Config) error { ran = &cfg; return nil }
	// The policy of this machine must not decide a test.
	defaultPolicy = filepath.Join(t.TempDir(), "absent.json")
	t.Cleanup(func() { runDaemon, defaultPolicy = saved, savedPolicy })
	cmd := newCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return ran, out.String(), err
}

// Flags that cannot take effect or cannot be right are refused, in one
// line, before anything starts.
func TestRefusedFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--mqtt-broker", "notaurl"}, "--mqtt-broker takes effect only with --ditto"},
		{[]string{"--thing-id", "a:b"}, "--thing-id takes effect only with --ditto"},
		{[]string{"--ditto-poll", "1s"}, "--ditto-poll takes effect only with --ditto"},
		{[]string{"--mqtt-client-id", "x"}, "--mqtt-client-id takes effect only with --ditto"},
		{[]string{"--ditto", "--mqtt-broker", "notaurl"}, `--mqtt-broker "notaurl"`},
		{[]string{"--audit-interval", "-1s"}, "--audit-interval -1s: negative"},
		{[]string{"--containerd-address=", "--namespace", "kanto-cm"}, "--namespace takes effect only with --containerd-address"},
		{[]string{"--namespace", " , "}, "no namespace to watch"},
		{[]string{"--config", "/nonexistent/policy.json"}, "--config: policy: open /nonexistent/policy.json"},
		{[]string{"--log-level", "loud"}, `--log-level "loud"`},
	} {
		ran, _, err := execute(t, c.args...)
		switch {
		case err == nil:
			t.Errorf("%v: accepted", c.args)
		case !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n"):
			t.Errorf("%v: error %q, want one line with %q", c.args, err, c.want)
		case ran != nil:
			t.Errorf("%v: refused, but the daemon ran", c.args)
		}
	}
}

func TestAcceptedFlags(t *testing.T) {
	policyFile := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(policyFile, []byte(`{"buses":{"can0":{}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{},
		{"--audit-interval", "0"},
		{"--ditto", "--mqtt-broker", "tcp://127.0.0.1:1883", "--ditto-poll", "2s"},
		{"--containerd-address=", "--metrics-address="},
		{"--namespace", "kanto-cm"},
		// As kanto-can passes its global --config to kanto-can daemon.
		{"--config", policyFile},
	} {
		ran, _, err := execute(t, args...)
		if err != nil || ran == nil {
			t.Errorf("%v: %v (ran: %v)", args, err, ran != nil)
		}
	}
	ran, _, _ := execute(t, "--namespace", "kanto-cm, k8s.io,")
	if ran == nil || strings.Join(ran.Namespaces, "|") != "kanto-cm|k8s.io" {
		t.Errorf("--namespace: %+v", ran)
	}
}

func TestVersion(t *testing.T) {
	ran, out, err := execute(t, "--version")
	if err != nil || ran != nil || !strings.HasPrefix(out, "kanto-can-daemon version ") {
		t.Errorf("--version: %q, %v, ran %v", out, err, ran != nil)
	}
}

// The docs give --namespace's default as the flag has it.
func TestNamespaceDefaultInDocs(t *testing.T) {
	def := newCommand().Flags().Lookup("namespace").DefValue
	for _, doc := range []string{"docs/leda.md", "docs/kanto.md"} {
		b, err := os.ReadFile(filepath.Join("../..", doc))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Join(strings.Fields(string(b)), " ")
		found := regexp.MustCompile("`--namespace`[^`]*default `([^`]+)`").FindAllStringSubmatch(text, -1)
		if len(found) == 0 {
			t.Errorf("%s does not give --namespace's default", doc)
		}
		for _, m := range found {
			if m[1] != def {
				t.Errorf("%s: --namespace default %q, the flag's is %q", doc, m[1], def)
			}
		}
	}
}
