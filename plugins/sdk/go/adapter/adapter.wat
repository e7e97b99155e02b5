;; A WASI preview1 adapter for Go plugins (`GOOS=wasip1`), written for Weir.
;;
;; wasmtime's preview1 adapter keeps its state in memory it allocates on the
;; first WASI call, through the module's `cabi_realloc` or `memory.grow`.
;; Neither works with Go: the first call comes from the Go runtime's start on
;; its system stack, where a `go:wasmexport` function cannot run, and Go's
;; allocator assumes it alone grows linear memory. This adapter has no state:
;; each of the sixteen functions the Go runtime imports maps straight to a
;; WASI 0.2 call (clocks, random, exit) or to the plugin's `host.log` (stdout
;; and stderr lines go to Weir's log under the step's name), and anything
;; else is refused. No files, no environment, no arguments, no sleeping.
(module
  (import "env" "memory" (memory 0))
  (import "wasi:clocks/monotonic-clock@0.2.0" "now" (func $monotonic_now (result i64)))
  (import "wasi:clocks/wall-clock@0.2.0" "now" (func $wall_now (param i32)))
  (import "wasi:random/random@0.2.0" "get-random-u64" (func $random_u64 (result i64)))
  (import "wasi:cli/exit@0.2.0" "exit" (func $exit (param i32)))
  (import "weir:plugin/host@0.1.2" "log" (func $log (param i32 i32 i32)))

  (func (export "sched_yield") (result i32) (i32.const 0))

  (func (export "proc_exit") (param $code i32)
    (call $exit (i32.ne (local.get $code) (i32.const 0)))
    unreachable)

  (func (export "args_get") (param i32 i32) (result i32) (i32.const 0))
  (func (export "environ_get") (param i32 i32) (result i32) (i32.const 0))
  (func (export "args_sizes_get") (param $count i32) (param $size i32) (result i32)
    (i32.store (local.get $count) (i32.const 0))
    (i32.store (local.get $size) (i32.const 0))
    (i32.const 0))
  (func (export "environ_sizes_get") (param $count i32) (param $size i32) (result i32)
    (i32.store (local.get $count) (i32.const 0))
    (i32.store (local.get $size) (i32.const 0))
    (i32.const 0))

  ;; clock 0 is the wall clock, 1 the monotonic clock; others are EINVAL (28).
  (func (export "clock_time_get") (param $id i32) (param $precision i64) (param $time i32) (result i32)
    (local $saved i64)
    (if (i32.eq (local.get $id) (i32.const 1))
      (then
        (i64.store (local.get $time) (call $monotonic_now))
        (return (i32.const 0))))
    (if (i32.eq (local.get $id) (i32.const 0))
      (then
        ;; The datetime record (u64 seconds, u32 nanoseconds) takes 16 bytes:
        ;; borrow the 8 after the caller's timestamp and give them back.
        (local.set $saved (i64.load (i32.add (local.get $time) (i32.const 8))))
        (call $wall_now (local.get $time))
        (i64.store (local.get $time)
          (i64.add
            (i64.mul (i64.load (local.get $time)) (i64.const 1000000000))
            (i64.extend_i32_u (i32.load (i32.add (local.get $time) (i32.const 8))))))
        (i64.store (i32.add (local.get $time) (i32.const 8)) (local.get $saved))
        (return (i32.const 0))))
    (i32.const 28))

  (func (export "random_get") (param $buf i32) (param $len i32) (result i32)
    (local $bits i64)
    (block $done
      (loop $words
        (br_if $done (i32.lt_u (local.get $len) (i32.const 8)))
        (i64.store (local.get $buf) (call $random_u64))
        (local.set $buf (i32.add (local.get $buf) (i32.const 8)))
        (local.set $len (i32.sub (local.get $len) (i32.const 8)))
        (br $words)))
    (local.set $bits (call $random_u64))
    (block $end
      (loop $bytes
        (br_if $end (i32.eqz (local.get $len)))
        (i64.store8 (local.get $buf) (local.get $bits))
        (local.set $bits (i64.shr_u (local.get $bits) (i64.const 8)))
        (local.set $buf (i32.add (local.get $buf) (i32.const 1)))
        (local.set $len (i32.sub (local.get $len) (i32.const 1)))
        (br $bytes)))
    (i32.const 0))

  ;; stdout (info) and stderr (warn) go to the host log; other files are EBADF (8).
  (func (export "fd_write") (param $fd i32) (param $iovs i32) (param $count i32) (param $written i32) (result i32)
    (local $total i32) (local $ptr i32) (local $len i32)
    (if (i32.or (i32.lt_u (local.get $fd) (i32.const 1)) (i32.gt_u (local.get $fd) (i32.const 2)))
      (then (return (i32.const 8))))
    (block $done
      (loop $each
        (br_if $done (i32.eqz (local.get $count)))
        (local.set $ptr (i32.load (local.get $iovs)))
        (local.set $len (i32.load (i32.add (local.get $iovs) (i32.const 4))))
        (if (local.get $len)
          (then
            (call $log
              (select (i32.const 3) (i32.const 2) (i32.eq (local.get $fd) (i32.const 2)))
              (local.get $ptr) (local.get $len))))
        (local.set $total (i32.add (local.get $total) (local.get $len)))
        (local.set $iovs (i32.add (local.get $iovs) (i32.const 8)))
        (local.set $count (i32.sub (local.get $count) (i32.const 1)))
        (br $each)))
    (i32.store (local.get $written) (local.get $total))
    (i32.const 0))

  ;; stdin, stdout and stderr are character devices; nothing else is open.
  (func (export "fd_fdstat_get") (param $fd i32) (param $stat i32) (result i32)
    (if (i32.gt_u (local.get $fd) (i32.const 2)) (then (return (i32.const 8))))
    (i64.store (local.get $stat) (i64.const 2))
    (i64.store (i32.add (local.get $stat) (i32.const 8)) (i64.const -1))
    (i64.store (i32.add (local.get $stat) (i32.const 16)) (i64.const -1))
    (i32.const 0))
  (func (export "fd_fdstat_set_flags") (param $fd i32) (param i32) (result i32)
    (select (i32.const 8) (i32.const 0) (i32.gt_u (local.get $fd) (i32.const 2))))
  (func (export "fd_close") (param i32) (result i32) (i32.const 8))
  (func (export "fd_prestat_get") (param i32 i32) (result i32) (i32.const 8))
  (func (export "fd_prestat_dir_name") (param i32 i32 i32) (result i32) (i32.const 8))
  ;; A plugin does not sleep: ENOTSUP (58).
  (func (export "poll_oneoff") (param i32 i32 i32 i32) (result i32) (i32.const 58))
)
