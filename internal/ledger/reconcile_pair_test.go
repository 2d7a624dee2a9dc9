package ledger

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// busyDay is n charges and n/4 refunds on each side, all of them matching.
func busyDay(n int) (theirs, ours []CardMovement) {
	start := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	for i := range n {
		pi := fmt.Sprintf("pi_%06d", i)
		at := start.Add(time.Duration(i) * time.Second)
		theirs = append(theirs, CardMovement{CardRef: CardRef{Kind: CardCharge, ID: pi, ChargeID: pi}, AmountCents: 100, At: at, Key: "topup:" + pi})
		ours = append(ours, CardMovement{CardRef: CardRef{Kind: CardCharge, ID: pi, ChargeID: pi}, AmountCents: 100, At: at.Add(time.Second), Key: "topup:" + pi})
		if i%4 == 0 {
			re := fmt.Sprintf("re_%06d", i)
			theirs = append(theirs, CardMovement{CardRef: CardRef{Kind: CardRefund, ID: re, ChargeID: pi}, AmountCents: 50, At: at.Add(time.Minute), Key: "refund:" + pi})
			// Half the ledger's refunds keep no id (before 0037): found by key.
			id := re
			if i%8 == 0 {
				id = ""
			}
			ours = append(ours, CardMovement{CardRef: CardRef{Kind: CardRefund, ID: id, ChargeID: pi}, AmountCents: 50, At: at.Add(time.Minute + time.Second), Key: "refund:" + pi})
		}
	}
	return theirs, ours
}

// Pairing a busy day's movements stops when its context ends, rather than running
// on after the daily run's time is up.
func TestPairMovementsStopsWithItsContext(t *testing.T) {
	theirs, ours := busyDay(8000)
	partner, paired, err := pairMovements(context.Background(), theirs, ours)
	if err != nil {
		t.Fatal(err)
	}
	for i, j := range partner {
		if j < 0 || !paired[j] || ours[j].ChargeID != theirs[i].ChargeID || ours[j].Kind != theirs[i].Kind {
			t.Fatalf("%s paired with %d", theirs[i], j)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := pairMovements(ctx, theirs, ours); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled pairing: %v", err)
	}
}

// BenchmarkPairMovements: 8,000 charges and 2,000 refunds a side, the busiest day
// imagined (go test -bench PairMovements ./internal/ledger/).
func BenchmarkPairMovements(b *testing.B) {
	theirs, ours := busyDay(8000)
	for b.Loop() {
		if _, _, err := pairMovements(context.Background(), theirs, ours); err != nil {
			b.Fatal(err)
		}
	}
}
