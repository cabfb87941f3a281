package node

import (
	"sync"
	"time"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
)

// eventLog keeps a session's progress events and wakes its watchers.
type eventLog struct {
	mu     sync.Mutex
	events []*synodv1.Event
	closed bool
	wake   chan struct{}
}

func newEventLog() *eventLog { return &eventLog{wake: make(chan struct{})} }

func (l *eventLog) add(ev *synodv1.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	ev.TimeUnixNano = time.Now().UnixNano()
	l.events = append(l.events, ev)
	if ev.Final {
		l.closed = true
	}
	close(l.wake)
	l.wake = make(chan struct{})
}

// since returns the events from index i on, a channel closed when more
// arrive, and whether the log is complete.
func (l *eventLog) since(i int) ([]*synodv1.Event, <-chan struct{}, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*synodv1.Event
	if i < len(l.events) {
		out = append(out, l.events[i:]...)
	}
	return out, l.wake, l.closed
}
