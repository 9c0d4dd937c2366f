//go:build unix

package csv

import (
	"runtime"
	"syscall"
	"unsafe"
)

// offHeap returns a slice of length 0 and capacity n whose array lives
// outside the garbage-collected heap, in an anonymous mapping that is
// unmapped once owner is unreachable. The table's rows are most of a large
// run's memory and live as long as it: kept on the heap, they would set
// the collector's pace, which lets the heap grow by as much again in
// garbage; kept here, the collector's headroom follows the work in flight,
// not the fleet. T must hold no Go pointers (the collector does not look
// here), and the slice must not outlive owner. Small tables, and any
// mapping the system refuses, are allocated as usual.
func offHeap[T any](n int, owner *table) []T {
	var zero T
	size := n * int(unsafe.Sizeof(zero))
	if size < offHeapMin {
		return make([]T, 0, n)
	}
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]T, 0, n)
	}
	runtime.AddCleanup(owner, func(mem []byte) { syscall.Munmap(mem) }, mem)
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(mem))), n)[:0]
}

// offHeapMin is the smallest array offHeap maps: below it, the heap is
// cheaper than a mapping.
const offHeapMin = 1 << 20
