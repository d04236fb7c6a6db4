package simulate

import (
	"math"
	"math/rand/v2"
)

// sensors is the state of one simulated device's instruments. Temperature
// drifts around a per-device set point (a mean-reverting random walk plus a
// slow cycle, as a room warms and cools), humidity moves against
// temperature, and the battery drains a little with every message and is
// recharged when nearly empty.
type sensors struct {
	rng         *rand.Rand
	setPoint    float64 // °C the room tends to
	temperature float64 // °C, without measurement noise
	humidity    float64 // %RH, without measurement noise
	battery     float64 // %
	phase       float64 // position in the slow cycle, radians
	step        int
}

func newSensors(rng *rand.Rand) *sensors {
	s := &sensors{
		rng:      rng,
		setPoint: 18 + rng.Float64()*6,
		battery:  70 + rng.Float64()*30,
		phase:    rng.Float64() * 2 * math.Pi,
	}
	s.temperature = s.setPoint + rng.NormFloat64()
	s.humidity = 45 + rng.Float64()*15
	return s
}

// cycleSteps is the length of the slow temperature cycle in messages: about
// ten minutes at one message per second, so a demo shows it.
const cycleSteps = 600

// reading advances the instruments by one message and returns what they
// measure, rounded as real sensors report.
func (s *sensors) reading() (temperature, humidity, battery float64) {
	s.step++
	cycle := 1.5 * math.Sin(s.phase+2*math.Pi*float64(s.step)/cycleSteps)
	// Ornstein–Uhlenbeck: pulled towards the set point (plus the cycle),
	// pushed around by noise.
	s.temperature += 0.05*(s.setPoint+cycle-s.temperature) + 0.08*s.rng.NormFloat64()
	s.humidity += 0.05*(50-2*(s.temperature-s.setPoint)-s.humidity) + 0.2*s.rng.NormFloat64()
	s.humidity = math.Min(math.Max(s.humidity, 5), 99)
	s.battery -= 0.005 + 0.003*s.rng.Float64()
	if s.battery < 5 {
		s.battery = 100 // someone swapped the batteries
	}
	temperature = round(s.temperature+0.05*s.rng.NormFloat64(), 2)
	humidity = round(s.humidity+0.3*s.rng.NormFloat64(), 1)
	battery = round(s.battery, 1)
	return temperature, humidity, battery
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
