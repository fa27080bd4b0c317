// Package tools holds no code: its go.mod pins the sandbox cluster's binaries
// (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, and kubectl
// for exploring the sandbox) as tool dependencies, and its Makefile builds
// them, with kwok, into bin/.
package tools
