package configdump

import (
	"os"
	"testing"
)

func BenchmarkBig(b *testing.B) {
	data, err := os.ReadFile("/tmp/big.json")
	if err != nil {
		b.Skip()
	}
	for b.Loop() {
		if _, err := Parse(data, Options{Kinds: []Kind{KindCluster}}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBigScanOnly(b *testing.B) {
	data, err := os.ReadFile("/tmp/big.json")
	if err != nil {
		b.Skip()
	}
	for b.Loop() {
		if _, err := Parse(data, Options{Kinds: []Kind{KindSecret}}); err != nil {
			b.Fatal(err)
		}
	}
}
