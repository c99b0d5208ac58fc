package ratelimit

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/nl"
	"github.com/kanto-can/kanto-can/nl/nltest"
)

// The golden messages below were written by hand from the UAPI structs
// (struct tcmsg, struct tcamsg, struct nlattr, struct tc_police) for a
// little-endian machine.
func littleEndian(t *testing.T) {
	if htons(1) != 0x0100 {
		t.Skip("golden bytes are little-endian")
	}
}

// unhex decodes lines of hex groups; "|" separates, and the first word of
// a line that is not hex starts a comment.
func unhex(t *testing.T, s string) []byte {
	t.Helper()
	var out []byte
	for _, line := range strings.Split(s, "\n") {
		for _, w := range strings.Fields(strings.ReplaceAll(line, "|", " ")) {
			b, err := hex.DecodeString(w)
			if err != nil {
				break
			}
			out = append(out, b...)
		}
	}
	return out
}

func checkMsg(t *testing.T, name string, m nl.Message, typ nl.HeaderType, flags nl.HeaderFlags, want []byte) {
	t.Helper()
	if m.Header.Type != typ || m.Header.Flags != flags {
		t.Errorf("%s: type %#x flags %#x, want %#x %#x", name, m.Header.Type, m.Header.Flags, typ, flags)
	}
	if !bytes.Equal(m.Data, want) {
		t.Errorf("%s:\n got %x\nwant %x", name, m.Data, want)
	}
}

// policeItem100x10 is action list item 1: police, 100 frames/s, burst 10
// frames (1562500 ticks of 64 ns = 0.1 s = 0x17d784), index idx.
func policeItem100x10(idx string) string {
	return `
		68000180                                  item 1, nested, 104 bytes
		  0b000100 706f6c69636500 00              TCA_ACT_KIND "police\0" + pad
		  58000280                                TCA_ACT_OPTIONS, nested, 88 bytes
		    3c000100                              TCA_POLICE_TBF, struct tc_police (56)
		      ` + idx + ` 02000000                index, action TC_ACT_SHOT
		      00000000 00000000 00000000          limit, burst, mtu
		      000000000000000000000000            rate
		      000000000000000000000000            peakrate
		      00000000 00000000 00000000          refcnt, bindcnt, capab
		    0c000a00 6400000000000000             TCA_POLICE_PKTRATE64 100
		    0c000b00 84d7170000000000             TCA_POLICE_PKTBURST64 1562500
	`
}

func TestNewQdiscMsg(t *testing.T) {
	littleEndian(t)
	m, err := newQdiscMsg(7)
	if err != nil {
		t.Fatal(err)
	}
	want := unhex(t, `
		00 00 0000 | 07000000 | 0000ffff | f1ffffff | 00000000   tcmsg: ifindex 7, handle ffff:, parent ingress
		0c000100 696e677265737300                                 TCA_KIND "ingress\0"
	`)
	checkMsg(t, "new qdisc", m, unix.RTM_NEWQDISC, nl.Acknowledge|nl.Create|nl.Excl, want)
}

func TestDelQdiscMsg(t *testing.T) {
	littleEndian(t)
	want := unhex(t, `00000000 07000000 00000000 f1ffffff 00000000`)
	checkMsg(t, "del qdisc", delQdiscMsg(7), unix.RTM_DELQDISC, nl.Acknowledge, want)
}

func TestNewFilterMsg(t *testing.T) {
	littleEndian(t)
	m, err := newFilterMsg(7, Limit{FramesPerSecond: 100, Burst: 10})
	if err != nil {
		t.Fatal(err)
	}
	want := unhex(t, `
		00000000 07000000 01000000 f2ffffff    tcmsg: ifindex 7, handle 1, parent ffff:fff2
		0003 0100                               tcm_info: htons(ETH_P_ALL), prio 1
		0d000100 6d61746368616c6c00 000000      TCA_KIND "matchall\0" + pad
		70000280                                TCA_OPTIONS, nested, 112 bytes
		  6c000280                              TCA_MATCHALL_ACT, nested, 108 bytes
	`+policeItem100x10("00000000"))
	checkMsg(t, "new filter", m, unix.RTM_NEWTFILTER, nl.Acknowledge|nl.Create|nl.Excl, want)
}

func TestReplaceActionMsg(t *testing.T) {
	littleEndian(t)
	m, err := replaceActionMsg(5, Limit{FramesPerSecond: 100, Burst: 10})
	if err != nil {
		t.Fatal(err)
	}
	want := unhex(t, `
		00000000                                tcamsg
		6c000180                                TCA_ACT_TAB, nested, 108 bytes
	`+policeItem100x10("05000000"))
	checkMsg(t, "replace action", m, unix.RTM_NEWACTION, nl.Acknowledge|nl.Create|nl.Replace, want)
}

func TestDumpFiltersMsg(t *testing.T) {
	littleEndian(t)
	want := unhex(t, `00000000 07000000 00000000 f2ffffff 00000000`)
	checkMsg(t, "dump filters", dumpFiltersMsg(7), unix.RTM_GETTFILTER, nl.Dump, want)
}

// TestParseFilter decodes a hand-written dump entry: our filter, with the
// police action's stats as the kernel adds them (TCA_ACT_STATS holding
// gnet_stats_basic and gnet_stats_queue).
func TestParseFilter(t *testing.T) {
	littleEndian(t)
	data := unhex(t, `
		00000000 07000000 01000000 f2ffffff 0003 0100
		0d000100 6d61746368616c6c00 000000
		a0000280                                TCA_OPTIONS, 160 bytes
		  9c000280                              TCA_MATCHALL_ACT, 156 bytes
		    98000180                            item 1, 152 bytes
		      0b000100 706f6c69636500 00
		      58000280
		        3c000100 2a000000 02000000 00000000 00000000 ffffffff
		          000000000000000000000000 000000000000000000000000
		          01000000 01000000 00000000
		        0c000a00 6400000000000000
		        0c000b00 84d7170000000000
		      30000480                          TCA_ACT_STATS, 48 bytes
		        14000100 e803000000000000 fa000000 00000000   basic: 1000 bytes, 250 packets (+pad)
		        18000300 00000000 00000000 28000000 00000000 28000000   queue: drops 40, overlimits 40
	`)
	f, err := parseFilter(nl.Message{Header: nl.Header{Type: unix.RTM_NEWTFILTER}, Data: data})
	if err != nil {
		t.Fatal(err)
	}
	if !f.ours() || f.ifindex != 7 {
		t.Fatalf("not recognised as ours: %+v", f)
	}
	p := *f.police
	want := police{index: 42, action: tcActShot, pktRate: 100, pktBurst: 1562500, hasPktRate: true, packets: 250, drops: 40}
	if p != want {
		t.Errorf("police %+v, want %+v", p, want)
	}
	if b := burstFrames(p.pktRate, p.pktBurst); b != 10 {
		t.Errorf("burst %d frames, want 10", b)
	}
}

func TestBurstRoundTrip(t *testing.T) {
	for _, l := range []Limit{
		{1, 1}, {3, 1}, {100, 10}, {7, 999_999}, {MaxFramesPerSecond, 1}, {MaxFramesPerSecond, MaxBurst},
		{1, MaxBurst}, {12345, 678}, {999_983, 3},
	} {
		ticks := burstTicks(l)
		if ticks == 0 {
			t.Errorf("%v: 0 ticks (the kernel wants at least 1)", l)
		}
		// The bucket must hold the whole burst: ticks*64 ns >= burst/rate s.
		if ticks*pschedTickNS*l.FramesPerSecond < l.Burst*nsPerSecond {
			t.Errorf("%v: %d ticks hold fewer than %d frames", l, ticks, l.Burst)
		}
		if got := burstFrames(l.FramesPerSecond, ticks); got != l.Burst {
			t.Errorf("%v: %d ticks read back as burst %d", l, ticks, got)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		l    Limit
		want string // "" = valid
	}{
		{Limit{100, 10}, ""},
		{Limit{1, 1}, ""},
		{Limit{MaxFramesPerSecond, MaxBurst}, ""},
		{Limit{0, 10}, "rate must be at least 1"},
		{Limit{100, 0}, "burst must be at least 1"},
		{Limit{MaxFramesPerSecond + 1, 10}, "above the maximum"},
		{Limit{100, MaxBurst + 1}, "above the maximum"},
	} {
		err := tc.l.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.l, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: error %v, want one saying %q", tc.l, err, tc.want)
		}
	}
}

func TestApplyValidates(t *testing.T) {
	// Apply refuses an invalid limit before it touches the connection.
	if err := Apply(nil, 1, Limit{}); err == nil {
		t.Fatal("Apply accepted a zero limit")
	}
}

// A kernel without one of the three modules answers ENOENT (after its own
// request_module failed), with an extended ack naming the kind of object:
// the error names the module and the kernel option to build it.
func TestApplyNamesAMissingModule(t *testing.T) {
	for _, c := range []struct {
		step nl.HeaderType
		ack  string
		want string
	}{
		{unix.RTM_NEWQDISC, "Specified qdisc kind is unknown", "modprobe sch_ingress; CONFIG_NET_SCH_INGRESS"},
		{unix.RTM_NEWTFILTER, "TC classifier not found", "modprobe cls_matchall; CONFIG_NET_CLS_MATCHALL"},
		{unix.RTM_NEWTFILTER, "Failed to load TC action module", "modprobe act_police; CONFIG_NET_ACT_POLICE"},
		// No extended ack: both modules the filter needs are named.
		{unix.RTM_NEWTFILTER, "", "modprobe cls_matchall act_police; CONFIG_NET_CLS_MATCHALL, CONFIG_NET_ACT_POLICE"},
	} {
		conn := nltest.Dial(func(_ int, req nl.Message) ([]nl.Message, error) {
			if req.Header.Type == c.step {
				return nil, &nl.KernelError{Errno: unix.ENOENT, Message: c.ack}
			}
			return nil, nil
		})
		err := Apply(conn, 7, Limit{FramesPerSecond: 100, Burst: 10})
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, unix.ENOENT) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%d %q: %v; want one line with %q", c.step, c.ack, err, c.want)
		}
		conn.Close()
	}
}
