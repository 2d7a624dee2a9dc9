// Package visits owns video visits: a facility's visit schedule (opening hours on
// its wall clock, slot length, closures, the booking window and the weekly limit),
// which kiosks are visit stations, and the free slots a family may book. Its tables
// are visit_schedules, visit_hours, visit_closures and visit_stations; it reaches
// facilities and kiosks only through internal/facility's functions.
package visits
