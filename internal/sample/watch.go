package sample

import "time"

// Watch turns samples taken one after another into views, as a live
// display needs them: an attachment that went away stays in view, marked
// Gone, for Keep after the sample that first missed it.
type Watch struct {
	Keep time.Duration

	prev *Sample
	gone map[attachmentKey]goneAttachment
}

type goneAttachment struct {
	since time.Time
	last  Attachment
}

// Next takes the next sample and returns the view since the one before;
// false for the first sample, which has no interval yet.
func (w *Watch) Next(s Sample) (View, bool) {
	prev := w.prev
	w.prev = &s
	if prev == nil {
		return View{}, false
	}
	v := Between(*prev, s)
	if w.gone == nil {
		w.gone = map[attachmentKey]goneAttachment{}
	}
	inView := map[attachmentKey]bool{}
	for _, a := range v.Attachments {
		inView[a.key] = true
		if a.Gone {
			w.gone[a.key] = goneAttachment{since: s.Time, last: a}
		}
	}
	for k, g := range w.gone {
		switch {
		case s.Time.Sub(g.since) > w.Keep:
			delete(w.gone, k)
		case !inView[k]:
			v.Attachments = append(v.Attachments, g.last)
		}
	}
	Sort(v.Attachments, ByBus)
	return v, true
}
