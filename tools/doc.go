// Package tools holds no code: its go.mod pins the sandbox cluster's binaries
// (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) as tool
// dependencies, and its Makefile builds them, with kwok, into bin/.
package tools
