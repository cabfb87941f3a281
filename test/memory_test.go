package test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	synodv1 "github.com/synod-mpc/synod/api/synod/v1"
	"github.com/synod-mpc/synod/parties/transport"
	"github.com/synod-mpc/synod/parties/wire"
)

// TestSlowStreamsHoldNoMemory: an authenticated party or analyst that
// declares the largest message on many streams and sends a byte on each
// holds no memory at the node for what it declared, and one that really
// sends more than its share of in-transit bytes is refused; the node keeps
// serving and the sender's share is given back when its streams end.
func TestSlowStreamsHoldNoMemory(t *testing.T) {
	c := newCluster(t, 3, 2, "ckks-n13")
	addr := readAddress(t, c.partyConfig(2))
	pid := c.nodes[1].Process.Pid
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	party, err := transport.Dial(addr, "party-2", memberCredentials(t, c.dir, "party-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer party.Close()
	analyst, err := transport.Dial(addr, "party-2", memberCredentials(t, c.dir, "analyst"))
	if err != nil {
		t.Fatal(err)
	}
	defer analyst.Close()
	declared := &synodv1.Chunk{TotalSize: wire.MaxMessageSize, Data: []byte{1}}

	before := residentBytes(t, pid)
	var held []interface{ CloseSend() error }
	for range 20 {
		s, err := synodv1.NewPeerClient(party).Deliver(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(declared); err != nil {
			t.Fatal(err)
		}
		held = append(held, s)
		a, err := synodv1.NewAnalystClient(analyst).SubmitQuery(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Send(&synodv1.SubmitQueryRequest{Part: &synodv1.SubmitQueryRequest_AnalystKey{AnalystKey: declared}}); err != nil {
			t.Fatal(err)
		}
		held = append(held, a)
	}
	time.Sleep(time.Second)
	grown := residentBytes(t, pid) - before
	t.Logf("40 streams declaring %d MiB each: node resident memory grew by %.1f MiB", wire.MaxMessageSize>>20, float64(grown)/(1<<20))
	if grown > 128<<20 {
		t.Fatalf("declared sizes took %d MiB of the node's memory", grown>>20)
	}
	for _, s := range held {
		s.CloseSend()
	}

	// Real bytes beyond the sender's share: two streams of 200 MiB are
	// held, a third is refused before it reaches the budget.
	chunk := bytes.Repeat([]byte{7}, wire.ChunkSize)
	send := func(s synodv1.Peer_DeliverClient, n int) error {
		for i := range n {
			c := &synodv1.Chunk{Data: chunk}
			if i == 0 {
				c.TotalSize = wire.MaxMessageSize
			}
			if err := s.Send(c); err != nil {
				return err
			}
		}
		return nil
	}
	var streams []synodv1.Peer_DeliverClient
	for range 2 {
		s, err := synodv1.NewPeerClient(party).Deliver(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := send(s, 200); err != nil {
			t.Fatalf("a stream within the budget: %v", err)
		}
		streams = append(streams, s)
	}
	third, err := synodv1.NewPeerClient(party).Deliver(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = send(third, 200)
	if err == nil || errors.Is(err, io.EOF) {
		_, err = third.CloseAndRecv()
	}
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "in transit") {
		t.Fatalf("a stream beyond the sender's budget: %v", err)
	}
	for _, s := range streams {
		s.CloseSend()
		if _, err := s.CloseAndRecv(); err == nil || !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("an unfinished message: %v", err)
		}
	}
	// The share is back: a new stream of the same sender gets as far.
	again, err := synodv1.NewPeerClient(party).Deliver(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := send(again, 200); err != nil {
		t.Fatalf("after the streams ended: %v", err)
	}
	again.CloseSend()
	again.CloseAndRecv()
	if _, err := synodv1.NewPeerClient(party).Ping(ctx, &synodv1.PingRequest{}); err != nil {
		t.Fatalf("party-2 after the streams: %v", err)
	}
}

// residentBytes reads a process's resident memory from /proc.
func residentBytes(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}
