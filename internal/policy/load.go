package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/kanto-can/kanto-can/internal/canid"
	"github.com/kanto-can/kanto-can/internal/jsonerr"
	"github.com/kanto-can/kanto-can/internal/request"
)

// Load reads and validates a config file. A missing file is reported with
// an error that wraps os.ErrNotExist: the caller decides what that means.
func Load(file string) (*Policy, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	p, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return p, nil
}

// Open is the rule every front end (CLI, hook, runc wrapper's hooks, the
// daemon) applies to find the admin's policy: the file at path; with no
// file at the default path (explicit false: nobody named one) there is no
// policy and everything is allowed, as with the manual recipe, which the
// returned notes say; a file named explicitly must exist. notes also carry
// the policy's warnings, for the caller to log once it succeeded, so that
// an error stays one line.
func Open(path string, explicit bool) (p *Policy, notes []string, err error) {
	p, err = Load(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return nil, []string{fmt.Sprintf("no policy file %s: any container may use any bus, both ways, every id (as with the manual recipe)", path)}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("policy: %w", err)
	}
	for _, w := range p.Warnings {
		notes = append(notes, "policy: "+w)
	}
	return p, notes, nil
}

// Parse validates a config file's content. Errors name the JSON path of
// what is wrong (e.g. containers[1].buses.can0.rx[2]).
func Parse(data []byte) (*Policy, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		return nil, jsonerr.Wrap(data, err)
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON object")
	}
	top, err := object("", root, "buses", "containers", "default")
	if err != nil {
		return nil, err
	}
	p := &Policy{Buses: map[string]Bus{}}
	if v, ok := top["buses"]; ok {
		buses, err := object("buses", v)
		if err != nil {
			return nil, err
		}
		for name, bv := range buses {
			at := "buses." + name
			if err := request.CheckIfName("bus name", name); err != nil {
				return nil, fmt.Errorf("%s: %w", at, err)
			}
			bus, err := object(at, bv, "fd", "virtual", "bridge")
			if err != nil {
				return nil, err
			}
			var b Bus
			if b.FD, err = fdMode(at+".fd", bus["fd"]); err != nil {
				return nil, err
			}
			if v, ok := bus["bridge"]; ok {
				str, _ := v.(string)
				if b.Bridge, err = request.ParseBridgeMode(str); err != nil {
					return nil, fmt.Errorf("%s.bridge: %v: want \"auto\", \"never\" or \"always\"", at, v)
				}
			}
			if v, ok := bus["virtual"]; ok {
				if b.Virtual, ok = v.(bool); !ok {
					return nil, fmt.Errorf("%s.virtual: want true or false, got %s", at, kind(v))
				}
			}
			p.Buses[name] = b
		}
	}
	if v, ok := top["containers"]; ok {
		list, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("containers: want an array of entries, got %s", kind(v))
		}
		for i, cv := range list {
			at := fmt.Sprintf("containers[%d]", i)
			c, err := object(at, cv, "match", "buses")
			if err != nil {
				return nil, err
			}
			var entry Container
			if entry.Match, err = patterns(at+".match", c["match"]); err != nil {
				return nil, err
			}
			if entry.Access, err = p.access(at, c["buses"]); err != nil {
				return nil, err
			}
			p.Containers = append(p.Containers, entry)
		}
	}
	if v, ok := top["default"]; ok && v != nil {
		d, err := object("default", v, "buses")
		if err != nil {
			return nil, err
		}
		a, err := p.access("default", d["buses"])
		if err != nil {
			return nil, err
		}
		p.Default = &a
	}
	return p, nil
}

// access reads an object of grants per bus; every bus must be configured.
func (p *Policy) access(at string, v any) (Access, error) {
	a := Access{Buses: map[string]Grant{}}
	if v == nil {
		return a, nil
	}
	grants, err := object(at+".buses", v)
	if err != nil {
		return a, err
	}
	for _, name := range sortedKeys(grants) {
		gat := at + ".buses." + name
		if _, ok := p.Buses[name]; !ok {
			return a, fmt.Errorf("%s: bus %s is not in \"buses\" (the buses for containers)", gat, name)
		}
		g, err := p.grant(gat, grants[name])
		if err != nil {
			return a, err
		}
		a.Buses[name] = g
	}
	return a, nil
}

func (p *Policy) grant(at string, v any) (Grant, error) {
	var g Grant
	o, err := object(at, v, "dir", "rx", "tx", "tx_rate")
	if err != nil {
		return g, err
	}
	if d, ok := o["dir"]; ok {
		s, ok := d.(string)
		if !ok {
			return g, fmt.Errorf("%s.dir: want a string (both, rx, tx), got %s", at, kind(d))
		}
		if g.Dir, err = request.ParseDirection(s); err != nil {
			return g, fmt.Errorf("%s.dir: %w", at, err)
		}
	}
	if g.RX, err = p.ids(at+".rx", o["rx"]); err != nil {
		return g, err
	}
	if g.TX, err = p.ids(at+".tx", o["tx"]); err != nil {
		return g, err
	}
	if g.RX != nil && !g.Dir.Receives() {
		return g, fmt.Errorf("%s.rx: dir=%s receives nothing", at, g.Dir)
	}
	if g.TX != nil && !g.Dir.Transmits() {
		return g, fmt.Errorf("%s.tx: dir=%s transmits nothing", at, g.Dir)
	}
	if r, ok := o["tx_rate"]; ok {
		if !g.Dir.Transmits() {
			return g, fmt.Errorf("%s.tx_rate: dir=%s transmits nothing", at, g.Dir)
		}
		if g.TxRate, err = rate(at+".tx_rate", r); err != nil {
			return g, err
		}
	}
	return g, nil
}

// ids reads an allow-list: an array of ids, ranges and id/masks. Overlaps
// are errors (a sign of a mistake in a list meant to be exact).
func (p *Policy) ids(at string, v any) (*canid.List, error) {
	if v == nil {
		return nil, nil
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s: want an array of ids (\"7DF\", \"100-10F\", \"700/7F0\", \"18DAF110\"), got %s", at, kind(v))
	}
	var l canid.List
	for i, iv := range arr {
		s, ok := iv.(string)
		if !ok {
			return nil, fmt.Errorf("%s[%d]: want a string, got %s", at, i, kind(iv))
		}
		it, err := canid.ParseItem(s)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", at, i, err)
		}
		for j, prev := range l.Items {
			if it.Overlaps(prev) {
				return nil, fmt.Errorf("%s[%d]: %s overlaps %s[%d] (%s)", at, i, it, at, j, prev)
			}
		}
		l.Items = append(l.Items, it)
	}
	fs, err := l.Filters()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", at, err)
	}
	if n := len(fs); n > ManyRules {
		p.Warnings = append(p.Warnings, fmt.Sprintf("%s compiles to %d can-gw rules per frame kind; ranges aligned to powers of two, or single ids (looked up in O(1)), cost less", at, n))
	}
	return &l, nil
}

func rate(at string, v any) (*request.Rate, error) {
	o, err := object(at, v, "frames_per_second", "burst")
	if err != nil {
		return nil, err
	}
	fps, err := positive(at+".frames_per_second", o["frames_per_second"], true)
	if err != nil {
		return nil, err
	}
	burst, err := positive(at+".burst", o["burst"], false)
	if err != nil {
		return nil, err
	}
	if burst == 0 {
		burst = max(1, fps/10) // a tenth of a second's worth
	}
	return &request.Rate{FramesPerSecond: fps, Burst: burst}, nil
}

func positive(at string, v any, required bool) (uint64, error) {
	if v == nil {
		if required {
			return 0, fmt.Errorf("%s: missing", at)
		}
		return 0, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("%s: want a number, got %s", at, kind(v))
	}
	i, err := n.Int64()
	if err != nil || i <= 0 || i > 1_000_000 {
		return 0, fmt.Errorf("%s: %s: want a whole number from 1 to 1000000", at, n)
	}
	return uint64(i), nil
}

func fdMode(at string, v any) (request.FDMode, error) {
	if v == nil {
		return request.FDAuto, nil
	}
	s, _ := v.(string)
	m, err := request.ParseFDMode(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %v: want \"auto\", \"on\" or \"off\"", at, v)
	}
	return m, nil
}

func patterns(at string, v any) ([]string, error) {
	var list []string
	switch x := v.(type) {
	case string:
		list = []string{x}
	case []any:
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("%s[%d]: want a string, got %s", at, i, kind(e))
			}
			list = append(list, s)
		}
	case nil:
		return nil, fmt.Errorf("%s: missing: name the containers (Kanto names or ids, glob patterns)", at)
	default:
		return nil, fmt.Errorf("%s: want a string or an array of strings, got %s", at, kind(v))
	}
	for i, pat := range list {
		if _, err := path.Match(pat, ""); err != nil || pat == "" {
			return nil, fmt.Errorf("%s[%d]: %q is not a valid pattern", at, i, pat)
		}
	}
	return list, nil
}

// object checks that v is a JSON object with only the allowed keys (any
// key when none are given) and returns it.
func object(at string, v any, allowed ...string) (map[string]any, error) {
	o, ok := v.(map[string]any)
	if !ok {
		where := at
		if where == "" {
			where = "the file"
		}
		return nil, fmt.Errorf("%s: want an object, got %s", where, kind(v))
	}
	if len(allowed) > 0 {
		for _, k := range sortedKeys(o) {
			if !contains(allowed, k) {
				prefix := ""
				if at != "" {
					prefix = at + "."
				}
				return nil, fmt.Errorf("%s%s: unknown field (known: %s)", prefix, k, strings.Join(allowed, ", "))
			}
		}
	}
	return o, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
