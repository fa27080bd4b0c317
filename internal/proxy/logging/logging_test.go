package logging

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

func TestNamedLoggersFilterByTheirOwnLevel(t *testing.T) {
	var out bytes.Buffer
	r := NewRegistry(Info)
	r.SetOutput(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug - 4}))
	httpLog, router := r.Logger("http"), r.Logger("router")
	if err := r.Set("http", Trace); err != nil {
		t.Fatal(err)
	}
	httpLog.With("conn", 7).WithGroup("req").Debug("headers", "path", "/x")
	router.Debug("route chosen")
	router.Warn("no route")
	got := out.String()
	if !strings.Contains(got, `msg=headers logger=http conn=7 req.path=/x`) {
		t.Errorf("http debug record missing or without its logger, attrs and group:\n%s", got)
	}
	if strings.Contains(got, "route chosen") {
		t.Errorf("router at info let a debug record through:\n%s", got)
	}
	if !strings.Contains(got, `msg="no route" logger=router`) {
		t.Errorf("router warning missing:\n%s", got)
	}
	r.SetAll(Off)
	out.Reset()
	router.Error("boom")
	httpLog.Error("boom")
	if out.Len() != 0 {
		t.Errorf("loggers set to off still wrote:\n%s", out.String())
	}
}

func TestTraceAndCriticalPrintWithEnvoyNames(t *testing.T) {
	var out bytes.Buffer
	r := NewRegistry(Trace)
	r.SetOutput(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug - 4, ReplaceAttr: ReplaceLevelNames}))
	l := r.Logger("pool")
	l.Log(context.Background(), Trace.slogLevel(), "tiny")
	l.Log(context.Background(), Critical.slogLevel(), "huge")
	if got := out.String(); !strings.Contains(got, "level=TRACE msg=tiny") || !strings.Contains(got, "level=CRITICAL msg=huge") {
		t.Errorf("levels not printed as TRACE and CRITICAL:\n%s", got)
	}
}

func TestSetNamesUnknownLogger(t *testing.T) {
	err := NewRegistry(Info).Set("htp", Debug)
	if err == nil || !strings.Contains(err.Error(), `unknown logger "htp"`) || !strings.Contains(err.Error(), "http,") {
		t.Fatalf("error %v; want it to name the logger and list the known ones", err)
	}
}

func FuzzParseLevel(f *testing.F) {
	for _, s := range []string{"trace", "debug", "info", "warning", "warn", "error", "critical", "off", "DEBUG", " info ", "", "loud"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLevel(s)
		if err != nil {
			if !strings.Contains(err.Error(), "unknown level") {
				t.Fatalf("ParseLevel(%q): error %v does not say what was wrong", s, err)
			}
			return
		}
		// A parsed level prints as a name that parses back to itself.
		back, err := ParseLevel(l.String())
		if err != nil || back != l {
			t.Fatalf("ParseLevel(%q) = %v, which does not round-trip (%v, %v)", s, l, back, err)
		}
	})
}
