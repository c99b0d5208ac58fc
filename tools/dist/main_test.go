package main

import (
	"io"
	"strings"
	"testing"
)

// Bad flags are refused before anything is built, naming the flag.
func TestRunRefusesBadFlags(t *testing.T) {
	for args, want := range map[string]string{
		"-out x -arch amd64,sparc": `-arch: unknown architecture "sparc" (known: amd64, arm64, armhf)`,
		"-out x -version 1-2":      `-version "1-2": not a Debian upstream version`,
		"-out x -version v1":       `-version "v1": not a Debian upstream version`,
	} {
		err := run(append([]string{"-src", "../.."}, strings.Fields(args)...), io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("dist %s: %v, want %q", args, err, want)
		}
	}
}

func TestSelectTargets(t *testing.T) {
	got, err := selectTargets("armhf,amd64,armhf")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].deb != "armhf" || got[1].deb != "amd64" {
		t.Errorf("selectTargets: %+v", got)
	}
	if all, err := selectTargets(""); err != nil || len(all) != len(targets) {
		t.Errorf("selectTargets(\"\"): %d targets, %v", len(all), err)
	}
}
