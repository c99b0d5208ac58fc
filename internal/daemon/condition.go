package daemon

import (
	"log/slog"
	"strings"
	"sync"
)

// condition is something the daemon retries that fails or works (the rule
// audit, reading the kernel for a scrape, containerd): its failure is
// logged once when it starts or its cause changes, and once when it ends,
// not at every try (an audit every second without can-gw would otherwise
// log 86,400 lines a day).
type condition struct {
	mu  sync.Mutex
	err string // the failure's message; "" while it works
}

// update records a try's outcome. changed: it fails with a new cause, or
// works again after failing; was is the previous failure ("" if none).
func (c *condition) update(err error) (changed bool, was string) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	was, c.err = c.err, msg
	return was != msg, was
}

// report records a try's outcome and logs a change: failing (warn, with
// the error on one line) when it starts failing or its cause changes,
// works (info, with the failure it ends) when it works again.
func (c *condition) report(log *slog.Logger, err error, failing, works string) {
	changed, was := c.update(err)
	switch {
	case changed && err != nil:
		log.Warn(failing, "err", oneLine(err))
	case changed:
		log.Info(works, "was", was)
	}
}

// oneLine is err's message on one line (errors.Join puts each on its own).
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// failure is the current failure's message, "" while it works.
func (c *condition) failure() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
