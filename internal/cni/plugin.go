package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/kanto-can/kanto-can/internal/attach"
	"github.com/kanto-can/kanto-can/internal/policy"
	"github.com/kanto-can/kanto-can/internal/request"
	"github.com/kanto-can/kanto-can/internal/target"
)

// Error codes of the plugin's own (the CNI spec leaves 100 and up to
// plugins); the spec's well-known codes are used where they fit.
const (
	ErrPolicy = 100 // the admin's policy refuses the request
	ErrAttach = 101 // the kernel work failed (unknown bus, ...): nothing left behind
	ErrCheck  = 102 // CHECK: something of the attachment is missing or extra
)

// Plugin runs the CNI commands. Stdout receives results; Stderr, notes
// (the policy's warnings) that the runtime logs.
type Plugin struct {
	Stdout, Stderr io.Writer
}

// Funcs returns the commands for skel.PluginMainFuncs.
func (p *Plugin) Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: p.Add, Del: p.Del, Check: p.Check, Status: p.Status, GC: p.GC}
}

// prepared is what ADD and CHECK share: config, pod, granted request.
type prepared struct {
	conf    *Config
	args    Args
	granted policy.Granted
	buses   []request.Bus // granted's
}

func (p *Plugin) prepare(a *skel.CmdArgs) (*prepared, error) {
	conf, err := Load(a.StdinData)
	if err != nil {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	args, err := ParseArgs(a.Args)
	if err != nil {
		return nil, types.NewError(types.ErrInvalidEnvironmentVariables, err.Error(), "")
	}
	req, err := conf.Request(args)
	if err != nil {
		return nil, types.NewError(types.ErrInvalidEnvironmentVariables, err.Error(), Label(args, a.ContainerID))
	}
	pr := &prepared{conf: conf, args: args}
	if len(req) == 0 {
		return pr, nil
	}
	path, explicit := conf.PolicyPath()
	pol, notes, err := policy.Open(path, explicit)
	if err != nil {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	if pr.granted, err = pol.Resolve(PolicyNames(args), req); err != nil {
		return nil, types.NewError(ErrPolicy, err.Error(), Label(args, a.ContainerID))
	}
	pr.buses = pr.granted.Buses()
	for _, n := range notes {
		if pol != nil { // without a file the note repeats on every pod
			fmt.Fprintln(p.Stderr, "kanto-can-cni:", n)
		}
	}
	return pr, nil
}

// target opens the pod's namespace, labelled with the pod.
func openTarget(a *skel.CmdArgs, args Args) (*target.Target, error) {
	if a.Netns == "" {
		return nil, types.NewError(types.ErrInvalidNetNS, "CNI_NETNS is empty", "")
	}
	t, err := target.FromPath(a.Netns)
	if err != nil {
		return nil, types.NewError(types.ErrInvalidNetNS, err.Error(), "")
	}
	t.Label, t.Container, t.EndsWithTask = Label(args, a.ContainerID), a.ContainerID, true
	return t, nil
}

// Add attaches the pod's buses and prints the result: the previous
// plugin's, unchanged, when chained; else the CAN interfaces (no IPs).
func (p *Plugin) Add(a *skel.CmdArgs) error {
	pr, err := p.prepare(a)
	if err != nil {
		return err
	}
	if len(pr.buses) == 0 && pr.conf.PrevResult == nil {
		return types.NewError(types.ErrInvalidNetworkConfig,
			"no bus: give \"buses\" in the plugin config, args.cni.buses (Multus cni-args) or KANTO_CAN in CNI_ARGS", "")
	}
	if len(pr.buses) > 0 {
		t, err := openTarget(a, pr.args)
		if err != nil {
			return err
		}
		defer t.Close()
		h, err := attach.OpenHost(attach.WithRecords(pr.conf.RecordsDir()))
		if err != nil {
			return types.NewError(types.ErrInternal, err.Error(), "")
		}
		defer h.Close()
		if _, err := h.Attach(t, pr.granted); err != nil {
			return types.NewError(ErrAttach, fmt.Sprintf("%s: %v", t.Label, err), "")
		}
	}
	return types.PrintResult(p.result(pr, a.Netns), pr.conf.CNIVersion)
}

// result is what ADD returns: prevResult unchanged when chained, else the
// CAN interfaces in the pod's namespace, without addresses.
func (p *Plugin) result(pr *prepared, netns string) types.Result {
	if pr.conf.PrevResult != nil {
		return pr.conf.PrevResult
	}
	r := &types100.Result{CNIVersion: types100.ImplementedSpecVersion}
	for _, b := range pr.buses {
		r.Interfaces = append(r.Interfaces, &types100.Interface{Name: b.Inside, Sandbox: netns})
	}
	return r
}

// Del removes everything attached for the sandbox (CNI_CONTAINERID),
// whatever the config, CNI_ARGS or the namespace: a DEL must succeed, and
// containerd sends a second one with CNI_NETNS empty and no prevResult.
// Only a config whose records dir cannot be read is an error.
func (p *Plugin) Del(a *skel.CmdArgs) error {
	recs := recordsOf(a.StdinData)
	h, err := attach.OpenHost(attach.WithRecords(recs))
	if err != nil {
		return types.NewError(types.ErrInternal, err.Error(), "")
	}
	defer h.Close()
	if a.ContainerID == "" {
		return types.NewError(types.ErrInvalidEnvironmentVariables, "CNI_CONTAINERID is empty", "")
	}
	if _, err := h.DetachContainer(a.ContainerID); err != nil {
		return types.NewError(types.ErrInternal, err.Error(), "")
	}
	return nil
}

// recordsOf is the records dir of a config, the default when the config
// cannot be read: DEL must not fail on what ADD would have refused.
func recordsOf(data []byte) string {
	var c struct {
		Records string `json:"records"`
	}
	if json.Unmarshal(data, &c) == nil && strings.HasPrefix(c.Records, "/") {
		return c.Records
	}
	return (&Config{}).RecordsDir()
}

// Check fails when anything of the pod's attachments is missing: a host
// end, the interface inside, a gateway rule (or one too many).
func (p *Plugin) Check(a *skel.CmdArgs) error {
	pr, err := p.prepare(a)
	if err != nil {
		return err
	}
	if len(pr.buses) == 0 {
		return nil
	}
	t, err := openTarget(a, pr.args)
	if err != nil {
		return err
	}
	defer t.Close()
	// With the records: a bridged attachment is checked against its record.
	h, err := attach.OpenHost(attach.WithRecords(pr.conf.RecordsDir()))
	if err != nil {
		return types.NewError(types.ErrInternal, err.Error(), "")
	}
	defer h.Close()
	if err := h.Check(t, pr.granted); err != nil {
		return types.NewError(ErrCheck, fmt.Sprintf("%s: %v", t.Label, err), "")
	}
	return nil
}

// Status (CNI 1.1) reports whether the plugin can serve ADDs: its config
// and the policy file are valid.
func (p *Plugin) Status(a *skel.CmdArgs) error {
	conf, err := Load(a.StdinData)
	if err != nil {
		return types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	path, explicit := conf.PolicyPath()
	if _, _, err := policy.Open(path, explicit); err != nil {
		return types.NewError(types.ErrPluginNotAvailable, err.Error(), "")
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return types.NewError(types.ErrPluginNotAvailable, err.Error(), "")
	}
	return nil
}

// GC (CNI 1.1) removes nothing: the attachments of a pod go with its DEL,
// with its namespace (the kernel drops the pair and its rules), and with
// its sandbox's task (the daemon). A GC names only one network's valid
// attachments, and the host ends do not say which network made them.
func (p *Plugin) GC(a *skel.CmdArgs) error {
	if _, err := Load(a.StdinData); err != nil {
		return types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	return nil
}

// AsError gives any error the CNI error form.
func AsError(err error) *types.Error {
	var e *types.Error
	if errors.As(err, &e) {
		return e
	}
	return types.NewError(types.ErrInternal, err.Error(), "")
}
