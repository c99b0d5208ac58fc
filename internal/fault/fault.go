//go:build !faultinject

// Package fault marks the points where tests kill kanto-can half way
// through a change, to check that what is left behind gets cleaned up.
// Normal builds compile every point to nothing; a build with the
// faultinject tag kills the process at the point named by the
// KANTO_CAN_FAULT environment variable, with SIGKILL, as the OOM killer or
// a power cut would: no deferred function runs.
package fault

// Point is where a fault may be injected. Names say what is done so far.
func Point(name string) {}
