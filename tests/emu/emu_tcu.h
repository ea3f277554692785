/* emu_tcu.h — the first error the emulated backend recorded (tcu_fail), for the test to report. */
#ifndef TPDIFF_EMU_TCU_H
#define TPDIFF_EMU_TCU_H

/* "" when none since the last emu_clear_error() */
const char *emu_first_error();
void emu_clear_error();

#endif
