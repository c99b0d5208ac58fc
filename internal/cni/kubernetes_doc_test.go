package cni

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/kanto-can/kanto-can/internal/request"
)

// The spec versions the doc names are those the plugin reports.
func TestKubernetesDocSpecVersions(t *testing.T) {
	doc, err := os.ReadFile("../../docs/engines/kubernetes.md")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(strings.Fields(string(doc)), " ")
	v := SpecVersions
	want := "spec " + strings.Join(v[:len(v)-1], ", ") + " and " + v[len(v)-1] + ":"
	if !strings.Contains(text, want) {
		t.Errorf("docs/engines/kubernetes.md does not say %q", want)
	}
}

// TestKubernetesDoc checks the manifests and the conflist of
// docs/engines/kubernetes.md: the kinds, the NAD's config is valid plugin
// config, the DaemonSet installs the plugin into the CNI bin dir and gives
// the daemon the records, the policy and containerd, a pod asks for the
// NAD, another for its buses by annotation (a valid request); the chained
// conflist's last plugin is ours, valid, and takes pods' annotations.
func TestKubernetesDoc(t *testing.T) {
	doc, err := os.ReadFile("../../docs/engines/kubernetes.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```(yaml|json)\n(.*?)```").FindAllSubmatch(doc, -1)
	kinds := map[string]map[string]any{}
	var pods []map[string]any
	var conflists int
	for _, b := range blocks {
		if string(b[1]) == "json" {
			var list struct {
				Plugins []json.RawMessage `json:"plugins"`
			}
			if err := json.Unmarshal(b[2], &list); err != nil {
				t.Fatalf("json block: %v\n%s", err, b[2])
			}
			last := list.Plugins[len(list.Plugins)-1]
			conf := append([]byte(`{"cniVersion":"1.0.0",`), bytes.TrimPrefix(bytes.TrimSpace(last), []byte("{"))...)
			c, err := Load(conf)
			if err != nil || !strings.Contains(string(last), `"kanto-can-cni"`) {
				t.Fatalf("the conflist's last plugin: %v: %s", err, last)
			}
			if !c.Capabilities["io.kubernetes.cri.pod-annotations"] {
				t.Errorf("the conflist's plugin does not declare the pod annotations capability: %s", last)
			}
			conflists++
			continue
		}
		for _, part := range strings.Split(string(b[2]), "\n---\n") {
			var obj map[string]any
			if err := yaml.Unmarshal([]byte(part), &obj); err != nil {
				t.Fatalf("yaml block: %v\n%s", err, part)
			}
			kind, _ := obj["kind"].(string)
			if kind == "" {
				t.Fatalf("a manifest without kind:\n%s", part)
			}
			kinds[kind] = obj
			if kind == "Pod" {
				pods = append(pods, obj)
			}
		}
	}
	if conflists != 1 {
		t.Errorf("%d conflists, want 1", conflists)
	}
	for _, k := range []string{"DaemonSet", "NetworkAttachmentDefinition", "Pod"} {
		if kinds[k] == nil {
			t.Fatalf("no %s in the page (kinds: %v)", k, keys(kinds))
		}
	}

	nad := kinds["NetworkAttachmentDefinition"]
	if get(t, nad, "apiVersion") != "k8s.cni.cncf.io/v1" {
		t.Errorf("NAD apiVersion %v", get(t, nad, "apiVersion"))
	}
	conf, err := Load([]byte(get(t, nad, "spec", "config").(string)))
	if err != nil {
		t.Fatalf("the NAD's config: %v", err)
	}
	if conf.Type != PluginType || len(conf.buses) == 0 {
		t.Errorf("the NAD's config: type %q, %d buses", conf.Type, len(conf.buses))
	}
	nadName := get(t, nad, "metadata", "name").(string)
	var asksNAD, annotated bool
	for _, pod := range pods {
		ann, _ := get(t, pod, "metadata", "annotations").(map[string]any)
		asksNAD = asksNAD || ann["k8s.v1.cni.cncf.io/networks"] == nadName
		if v, ok := ann[AnnotationBuses].(string); ok {
			annotated = true
			if _, err := request.ParseList(v); err != nil {
				t.Errorf("the pod's annotation %s: %v", AnnotationBuses, err)
			}
		}
	}
	if !asksNAD || !annotated {
		t.Errorf("want a pod asking for the NAD %q (%v) and one with the annotation %s (%v)", nadName, asksNAD, AnnotationBuses, annotated)
	}

	ds := kinds["DaemonSet"]
	spec := get(t, ds, "spec", "template", "spec").(map[string]any)
	if spec["hostNetwork"] != true || spec["hostPID"] != true {
		t.Errorf("the daemon needs the host's network (its CAN buses) and pids (containers' init processes)")
	}
	hostPaths := map[string]string{} // volume -> host path
	for _, v := range spec["volumes"].([]any) {
		v := v.(map[string]any)
		if hp, ok := v["hostPath"].(map[string]any); ok {
			hostPaths[v["name"].(string)] = hp["path"].(string)
		}
	}
	mounts := func(c map[string]any) map[string]string { // host path -> mount path
		out := map[string]string{}
		for _, m := range c["volumeMounts"].([]any) {
			m := m.(map[string]any)
			out[hostPaths[m["name"].(string)]] = m["mountPath"].(string)
		}
		return out
	}
	inits := spec["initContainers"].([]any)
	install := inits[0].(map[string]any)
	binMount, ok := mounts(install)["/opt/cni/bin"]
	if !ok {
		t.Fatalf("the install container does not mount the CNI bin dir: %v", mounts(install))
	}
	cmd := strings.Join(toStrings(install["command"]), " ")
	if !strings.Contains(cmd, "mv ") || !strings.Contains(cmd, binMount+"/"+PluginType) {
		t.Errorf("the install container must put %s into %s atomically: %s", PluginType, binMount, cmd)
	}
	daemon := spec["containers"].([]any)[0].(map[string]any)
	m := mounts(daemon)
	for host, want := range map[string]string{"/run/kanto-can": "/run/kanto-can", "/etc/kanto-can": "/etc/kanto-can", "/run/containerd/containerd.sock": "/run/containerd/containerd.sock"} {
		if m[host] != want {
			t.Errorf("the daemon mounts %s at %q, want %s", host, m[host], want)
		}
	}
	args := toStrings(daemon["command"])
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--namespace=") && strings.Contains(a, "k8s.io") }) {
		t.Errorf("the daemon must watch k8s.io: %v", args)
	}
	caps := get(t, daemon, "securityContext", "capabilities", "add")
	if !slices.Equal(toStrings(caps), []string{"NET_ADMIN"}) {
		t.Errorf("the daemon's capabilities: %v, want NET_ADMIN only", caps)
	}
}

func get(t *testing.T, obj map[string]any, path ...string) any {
	t.Helper()
	var v any = obj
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%v: %s is not an object", path, p)
		}
		v = m[p]
	}
	return v
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func keys(m map[string]map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
