import { FAT_DATE, FAT_TIME } from './layout.js';

/**
 * FAT date and time fields ("Date and Time Formats") to nanoseconds since the Unix epoch.
 *
 * FAT stores local time and not which zone it was. Cairn reads the fields as UTC, which is what Linux's
 * vfat does without a `tz=`/`time_offset=` option on a machine whose kernel zone is UTC, and what mtools
 * reports with TZ=UTC (the tests run it so): the digits a guest showed are the digits Cairn shows, and
 * the same stored bytes always give the same instant.
 *
 * Month 0 and day 0, which no valid date has, read as 1 (as Linux does); other out-of-range fields
 * (month 13, hour 25…) carry over into the next unit rather than fail the file.
 */
export function fatTimeToNs(date: number, time: number, tenMs = 0): bigint {
  const year = FAT_DATE.epochYear + ((date >> FAT_DATE.yearShift) & FAT_DATE.yearMask);
  const month = Math.max(1, (date >> FAT_DATE.monthShift) & FAT_DATE.monthMask);
  const day = Math.max(1, date & FAT_DATE.dayMask);
  const hour = (time >> FAT_TIME.hourShift) & FAT_TIME.hourMask;
  const minute = (time >> FAT_TIME.minuteShift) & FAT_TIME.minuteMask;
  const second = (time & FAT_TIME.twoSecondMask) * 2;
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  // The creation field counts 10 ms units, 0–199, on top of the 2-second granularity.
  return BigInt(ms) * 1_000_000n + BigInt(tenMs) * 10_000_000n;
}
