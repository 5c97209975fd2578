/*
 * MC146818 CMOS RTC at 0x70/0x71: the host's UTC time in BCD, 24-hour
 * mode, never "update in progress". Guests read the wall clock at boot
 * from it; without it Linux may spin on the UIP bit of an absent chip.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "device.h"
#include "devices.h"
#include "state.h"

enum {
	RTC_SEC = 0x00,
	RTC_MIN = 0x02,
	RTC_HOUR = 0x04,
	RTC_WDAY = 0x06,
	RTC_MDAY = 0x07,
	RTC_MON = 0x08,
	RTC_YEAR = 0x09,
	RTC_REG_A = 0x0a,
	RTC_REG_B = 0x0b,
	RTC_REG_C = 0x0c,
	RTC_REG_D = 0x0d,
	RTC_CENTURY = 0x32
};

#define REG_B_24H   0x02
#define REG_D_VALID 0x80

static void power_on(struct rtc *r)
{
	r->index = 0;
	memset(r->cmos, 0, sizeof(r->cmos));
	r->cmos[RTC_REG_A] = 0x26; /* 32.768 kHz base, 1024 Hz rate, UIP clear */
	r->cmos[RTC_REG_B] = REG_B_24H;
	r->cmos[RTC_REG_D] = REG_D_VALID;
}

void rtc_init(struct rtc *r)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	power_on(r);
}

void rtc_reset(struct rtc *r)
{
	pthread_mutex_lock(&r->lock);
	power_on(r);
	pthread_mutex_unlock(&r->lock);
}

static void rtc_dev_reset(struct device *dev)
{
	rtc_reset(dev->opaque);
}

static void rtc_dev_destroy(struct device *dev)
{
	struct rtc *r = dev->opaque;

	pthread_mutex_destroy(&r->lock);
}

#define REG_B_BINARY 0x04

/* BCD unless the guest switched the chip to binary mode. */
static uint8_t enc(const struct rtc *r, int v)
{
	if (r->cmos[RTC_REG_B] & REG_B_BINARY)
		return (uint8_t)v;
	return (uint8_t)(((v / 10) << 4) | (v % 10));
}

/* Registers computed from the host clock rather than stored. */
static bool rtc_is_time_reg(uint8_t idx)
{
	switch (idx) {
	case RTC_SEC:
	case RTC_MIN:
	case RTC_HOUR:
	case RTC_WDAY:
	case RTC_MDAY:
	case RTC_MON:
	case RTC_YEAR:
	case RTC_CENTURY: return true;
	default: return false;
	}
}

static uint8_t read_reg(struct rtc *r, uint8_t idx)
{
	struct tm tm;
	time_t now;

	if (!rtc_is_time_reg(idx))
		return idx == RTC_REG_A ? (uint8_t)(r->cmos[idx] & 0x7f) : r->cmos[idx];
	now = time(NULL);
	gmtime_r(&now, &tm);
	switch (idx) {
	case RTC_SEC: return enc(r, tm.tm_sec);
	case RTC_MIN: return enc(r, tm.tm_min);
	case RTC_HOUR: return enc(r, tm.tm_hour);
	case RTC_WDAY: return enc(r, tm.tm_wday + 1);
	case RTC_MDAY: return enc(r, tm.tm_mday);
	case RTC_MON: return enc(r, tm.tm_mon + 1);
	case RTC_YEAR: return enc(r, tm.tm_year % 100);
	case RTC_CENTURY: return enc(r, (tm.tm_year + 1900) / 100);
	default: return r->cmos[idx]; /* alarm registers */
	}
}

void rtc_pio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct rtc *r = opaque;

	if (len != 1) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&r->lock);
	if (offset == 0) {
		if (is_write)
			r->index = data[0] & 0x7f; /* bit 7 is the NMI mask */
		else
			data[0] = 0xff;
	} else if (is_write) {
		/* Time registers follow the host; C and D are read-only. */
		if (!rtc_is_time_reg(r->index) && r->index != RTC_REG_C && r->index != RTC_REG_D)
			r->cmos[r->index] = data[0];
	} else {
		data[0] = read_reg(r, r->index);
	}
	pthread_mutex_unlock(&r->lock);
}

int rtc_attach(struct rtc *r, struct bus *pio)
{
	return bus_register(pio, 0x70, 2, rtc_pio, r, "rtc");
}

/* ---- saved state (device.h: save, restore) ---- */

#define RTC_STATE_V1 1

/* Whether the guest can write CMOS byte idx (rtc_pio); the rest never change. */
static bool rtc_writable(uint8_t idx)
{
	return !rtc_is_time_reg(idx) && idx != RTC_REG_C && idx != RTC_REG_D;
}

/*
 * V1: version, the index register, the 128 CMOS bytes as stored. The time
 * of day is not state: it is read from the host clock at every access, so
 * a restored guest reads the host's time, as after a boot. The bytes the
 * guest cannot write (the time registers' slots, C and D) are saved as
 * they are and must come back as power-on left them.
 */
static int rtc_save(struct device *dev, struct state_writer *w)
{
	struct rtc *r = dev->opaque;

	pthread_mutex_lock(&r->lock);
	state_put_u32(w, RTC_STATE_V1);
	state_put_u8(w, r->index);
	state_put(w, r->cmos, sizeof(r->cmos));
	pthread_mutex_unlock(&r->lock);
	return state_writer_error(w);
}

static int rtc_restore(struct device *dev, struct state_reader *rd)
{
	struct rtc *r = dev->opaque;
	struct rtc fresh; /* its CMOS bytes only: what power-on leaves */
	uint8_t index, cmos[sizeof(r->cmos)];

	if (state_get_u32(rd) != RTC_STATE_V1)
		return rd->err ? rd->err : -EPROTO;
	index = state_get_u8(rd);
	state_get(rd, cmos, sizeof(cmos));
	if (index >= sizeof(cmos)) /* a guest's index write keeps 7 bits */
		state_reader_fail(rd, -EINVAL);
	power_on(&fresh);
	for (uint8_t i = 0; i < sizeof(cmos); i++)
		if (!rtc_writable(i) && cmos[i] != fresh.cmos[i])
			state_reader_fail(rd, -EINVAL);
	if (rd->err)
		return rd->err;

	pthread_mutex_lock(&r->lock);
	r->index = index;
	memcpy(r->cmos, cmos, sizeof(cmos));
	pthread_mutex_unlock(&r->lock);
	return 0;
}

const struct device_ops rtc_device_ops = {
    .reset = rtc_dev_reset,
    .save = rtc_save,
    .restore = rtc_restore,
    .destroy = rtc_dev_destroy,
};
