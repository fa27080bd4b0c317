package annotation

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   map[string]string
		want *Spec
		err  string // substring of the error; "" for none
	}{
		{name: "no annotations", in: map[string]string{"other": "x"}},
		{name: "full", in: map[string]string{Stages: "10, 50,100", Interval: "60s", Max5xxRatio: "0.02", MaxLatencyIncrease: "1.5"},
			want: &Spec{Stages: []int{10, 50, 100}, Interval: time.Minute, Max5xxRatio: 0.02, MaxLatencyIncrease: 1.5, Has5xxGate: true, HasLatencyGate: true}},
		{name: "percent signs", in: map[string]string{Stages: "25%,100%", Interval: "5m"}, want: &Spec{Stages: []int{25, 100}, Interval: 5 * time.Minute}},
		{name: "one stage needs no interval", in: map[string]string{Stages: "100"}, want: &Spec{Stages: []int{100}}},
		{name: "last not 100", in: map[string]string{Stages: "10,50", Interval: "1m"}, err: "last stage must be 100"},
		{name: "not growing", in: map[string]string{Stages: "50,50,100", Interval: "1m"}, err: "stage 2 (50%) does not grow"},
		{name: "not a number", in: map[string]string{Stages: "10,x,100", Interval: "1m"}, err: `stage 2 ("x")`},
		{name: "zero", in: map[string]string{Stages: "0,100", Interval: "1m"}, err: "from 1 to 100"},
		{name: "missing interval", in: map[string]string{Stages: "10,100"}, err: "interval: \"\": missing"},
		{name: "bad interval", in: map[string]string{Stages: "10,100", Interval: "soon"}, err: "positive duration"},
		{name: "negative interval", in: map[string]string{Stages: "10,100", Interval: "-1s"}, err: "positive duration"},
		{name: "ratio over 1", in: map[string]string{Stages: "100", Max5xxRatio: "2"}, err: "between 0 and 1"},
		{name: "latency under 1", in: map[string]string{Stages: "100", MaxLatencyIncrease: "0.5"}, err: "at least 1"},
		{name: "typo", in: map[string]string{"rollout.mesh.io/stage": "10,100"}, err: "rollout.mesh.io/stage: \"10,100\": unknown rollout annotation"},
		{name: "interval alone", in: map[string]string{Interval: "1m"}, err: "set without rollout.mesh.io/stages"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Parse(%v) error %v, want one containing %q", tc.in, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse(%v) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

// FuzzParse: whatever the annotations say, Parse either refuses them or
// returns stages that grow to 100 and an interval when there are several.
func FuzzParse(f *testing.F) {
	f.Add("10,50,100", "60s", "0.02", "1.5")
	f.Add("100", "", "", "")
	f.Add("5%,100%", "1h", "0", "1")
	f.Add(",", "0s", "NaN", "Inf")
	f.Fuzz(func(t *testing.T, stages, interval, ratio, latency string) {
		in := map[string]string{Stages: stages}
		for k, v := range map[string]string{Interval: interval, Max5xxRatio: ratio, MaxLatencyIncrease: latency} {
			if v != "" {
				in[k] = v
			}
		}
		s, err := Parse(in)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "annotation "+Prefix) {
				t.Fatalf("error %q does not name the annotation", err)
			}
			return
		}
		if len(s.Stages) == 0 || s.Stages[len(s.Stages)-1] != 100 {
			t.Fatalf("stages %v do not end at 100", s.Stages)
		}
		for i := 1; i < len(s.Stages); i++ {
			if s.Stages[i] <= s.Stages[i-1] {
				t.Fatalf("stages %v do not grow", s.Stages)
			}
		}
		if len(s.Stages) > 1 && s.Interval <= 0 {
			t.Fatalf("stages %v without an interval", s.Stages)
		}
		if s.Max5xxRatio < 0 || s.Max5xxRatio > 1 || s.MaxLatencyIncrease != 0 && s.MaxLatencyIncrease < 1 {
			t.Fatalf("gates out of range: %+v", s)
		}
	})
}
