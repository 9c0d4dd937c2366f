//go:build !unix

package csv

// offHeap returns make([]T, 0, n): this system's tables live on the heap.
func offHeap[T any](n int, _ *table) []T { return make([]T, 0, n) }
