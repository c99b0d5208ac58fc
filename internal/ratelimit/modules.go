package ratelimit

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kanto-can/kanto-can/nl"
)

// A kernel without the module of a qdisc, classifier or action answers
// ENOENT once its own request_module failed, with an extended ack that
// says which kind of object it could not find (net/sched: qdisc_create
// "Specified qdisc kind is unknown", tcf_proto_lookup_ops "TC classifier
// not found", tc_action_load_ops "Failed to load TC action module").

// missingQdisc explains the ingress qdisc's ENOENT.
func missingQdisc(err error) error {
	if !errors.Is(err, unix.ENOENT) {
		return err
	}
	return fmt.Errorf("the sch_ingress kernel module is missing (modprobe sch_ingress; CONFIG_NET_SCH_INGRESS): %w", err)
}

// missingFilter explains the matchall filter's ENOENT: its classifier or
// its police action; both when the kernel did not say which.
func missingFilter(err error) error {
	if !errors.Is(err, unix.ENOENT) {
		return err
	}
	var ke *nl.KernelError
	msg := ""
	if errors.As(err, &ke) {
		msg = strings.ToLower(ke.Message)
	}
	switch {
	case strings.Contains(msg, "classifier"):
		return fmt.Errorf("the cls_matchall kernel module is missing (modprobe cls_matchall; CONFIG_NET_CLS_MATCHALL): %w", err)
	case strings.Contains(msg, "action"):
		return fmt.Errorf("the act_police kernel module is missing (modprobe act_police; CONFIG_NET_ACT_POLICE): %w", err)
	}
	return fmt.Errorf("the cls_matchall or act_police kernel module is missing (modprobe cls_matchall act_police; CONFIG_NET_CLS_MATCHALL, CONFIG_NET_ACT_POLICE): %w", err)
}
