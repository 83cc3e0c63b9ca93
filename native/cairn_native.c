/*
 * Cairn's small N-API addon: the few system calls Node.js does not expose.
 *   seekData(fd, offset)  -> offset of the next data at or after offset, or -1 past the last data
 *   seekHole(fd, offset)  -> offset of the next hole at or after offset (the file end counts as one)
 *   blockDeviceSize(fd)   -> size in bytes of a block device (BLKGETSIZE64)
 *   syncfs(fd)            -> flushes the whole filesystem holding fd (one call instead of an fsync per chunk)
 *   startWriteback(fd)    -> starts writing a file's dirty pages out without waiting (sync_file_range),
 *                            so the syncfs before a manifest finds little left to do
 * Every function throws an Error whose `code` is the errno name on failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static napi_value throw_errno(napi_env env, int err, const char *syscall) {
  char message[128];
  const char *name = strerrorname_np(err);
  snprintf(message, sizeof message, "%s: %s", syscall, strerror(err));
  napi_throw_error(env, name ? name : "EIO", message);
  return NULL;
}

static int get_args(napi_env env, napi_callback_info info, size_t wanted, napi_value *args) {
  size_t argc = wanted;
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc < wanted) {
    napi_throw_type_error(env, NULL, "missing arguments");
    return 0;
  }
  return 1;
}

static napi_value make_number(napi_env env, double value) {
  napi_value result;
  napi_create_double(env, value, &result);
  return result;
}

static napi_value do_seek(napi_env env, napi_callback_info info, int whence, const char *name) {
  napi_value args[2];
  int32_t fd;
  int64_t offset;
  if (!get_args(env, info, 2, args)) return NULL;
  if (napi_get_value_int32(env, args[0], &fd) != napi_ok || napi_get_value_int64(env, args[1], &offset) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected (fd, offset)");
    return NULL;
  }
  off_t result = lseek(fd, (off_t)offset, whence);
  if (result < 0) {
    /* ENXIO: no data (or hole) at or after offset, i.e. offset is at or past the end. */
    if (errno == ENXIO) return make_number(env, -1);
    return throw_errno(env, errno, name);
  }
  return make_number(env, (double)result);
}

static napi_value seek_data(napi_env env, napi_callback_info info) { return do_seek(env, info, SEEK_DATA, "lseek(SEEK_DATA)"); }
static napi_value seek_hole(napi_env env, napi_callback_info info) { return do_seek(env, info, SEEK_HOLE, "lseek(SEEK_HOLE)"); }

/* Reads the single fd argument; returns 0 (with a JS exception pending) when it is missing or not a number. */
static int get_fd(napi_env env, napi_callback_info info, int32_t *fd) {
  napi_value args[1];
  if (!get_args(env, info, 1, args)) return 0;
  if (napi_get_value_int32(env, args[0], fd) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected (fd)");
    return 0;
  }
  return 1;
}

static napi_value block_device_size(napi_env env, napi_callback_info info) {
  int32_t fd;
  uint64_t size = 0;
  if (!get_fd(env, info, &fd)) return NULL;
  if (ioctl(fd, BLKGETSIZE64, &size) != 0) return throw_errno(env, errno, "ioctl(BLKGETSIZE64)");
  return make_number(env, (double)size);
}

static napi_value sync_fs(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!get_fd(env, info, &fd)) return NULL;
  if (syncfs(fd) != 0) return throw_errno(env, errno, "syncfs");
  return NULL;
}

static napi_value start_writeback(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!get_fd(env, info, &fd)) return NULL;
  if (sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE) != 0) return throw_errno(env, errno, "sync_file_range");
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"seekData", NULL, seek_data, NULL, NULL, NULL, napi_enumerable, NULL},
      {"seekHole", NULL, seek_hole, NULL, NULL, NULL, napi_enumerable, NULL},
      {"blockDeviceSize", NULL, block_device_size, NULL, NULL, NULL, napi_enumerable, NULL},
      {"syncfs", NULL, sync_fs, NULL, NULL, NULL, napi_enumerable, NULL},
      {"startWriteback", NULL, start_writeback, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
