package leaderterm

import (
	"cmp"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CompareAge orders objects oldest first (creationTimestamp), then by
// name: the precedence of flock's pools, which every replica computes
// alike from the same objects.
func CompareAge(a, b metav1.Object) int {
	ta, tb := a.GetCreationTimestamp(), b.GetCreationTimestamp()
	if c := ta.Compare(tb.Time); c != 0 {
		return c
	}
	return cmp.Compare(a.GetName(), b.GetName())
}
