;; Two WebAssembly SIMD kernels for the ranking scan (src/eval/rank.ts). A plain JS loop over a Float32Array does
;; not vectorise; these compare 4 floats per instruction and 16 per loop turn, so the scan of a block of scores
;; costs a small part of the matrix product that produced it. Compiled by `npm run build` (scripts/compile-wat.mjs).
;;
;;   count_ge(p, n, t)           the number of the n floats at byte address p that are >= t
;;   first_above(p, start, n, t) the first index i in [start, n) with float[i] > t, or n
;;
;; NaN compares false everywhere, so it is never counted and never found above a threshold.
;; Score rows start at any float of the memory, so the vector loads promise no alignment (align=1).
(module
  (import "env" "memory" (memory 1))

  (func (export "count_ge") (param $p i32) (param $n i32) (param $t f32) (result i32)
    (local $end i32) (local $end16 i32) (local $count i32) (local $tv v128) (local $acc v128)
    (local.set $end (i32.add (local.get $p) (i32.shl (local.get $n) (i32.const 2))))
    ;; The vector loop covers the first n rounded down to a multiple of 16 floats.
    (local.set $end16 (i32.add (local.get $p) (i32.shl (i32.and (local.get $n) (i32.const -16)) (i32.const 2))))
    (local.set $tv (f32x4.splat (local.get $t)))
    ;; acc's lanes count down: a true comparison lane is -1 (all bits set), subtracted.
    (block $done
      (br_if $done (i32.ge_u (local.get $p) (local.get $end16)))
      (loop $vectors
        (local.set $acc
          (i32x4.sub
            (i32x4.sub
              (i32x4.sub
                (i32x4.sub
                  (local.get $acc)
                  (f32x4.ge (v128.load align=1 (local.get $p)) (local.get $tv)))
                (f32x4.ge (v128.load offset=16 align=1 (local.get $p)) (local.get $tv)))
              (f32x4.ge (v128.load offset=32 align=1 (local.get $p)) (local.get $tv)))
            (f32x4.ge (v128.load offset=48 align=1 (local.get $p)) (local.get $tv))))
        (br_if $vectors (i32.lt_u (local.tee $p (i32.add (local.get $p) (i32.const 64))) (local.get $end16)))))
    (local.set $count
      (i32.add
        (i32.add
          (i32.add (i32x4.extract_lane 0 (local.get $acc)) (i32x4.extract_lane 1 (local.get $acc)))
          (i32x4.extract_lane 2 (local.get $acc)))
        (i32x4.extract_lane 3 (local.get $acc))))
    ;; The scalar tail: the last n mod 16 floats.
    (block $done
      (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
      (loop $scalars
        (local.set $count (i32.add (local.get $count) (f32.ge (f32.load (local.get $p)) (local.get $t))))
        (br_if $scalars (i32.lt_u (local.tee $p (i32.add (local.get $p) (i32.const 4))) (local.get $end)))))
    (local.get $count))

  (func (export "first_above") (param $base i32) (param $start i32) (param $n i32) (param $t f32) (result i32)
    (local $p i32) (local $end i32) (local $tv v128)
    (local.set $p (i32.add (local.get $base) (i32.shl (local.get $start) (i32.const 2))))
    (local.set $end (i32.add (local.get $base) (i32.shl (local.get $n) (i32.const 2))))
    (local.set $tv (f32x4.splat (local.get $t)))
    ;; Skip 16 floats at a time while none of them is above t; stop at the first group that has one.
    (block $found
      (loop $vectors
        (br_if $found (i32.gt_u (i32.add (local.get $p) (i32.const 64)) (local.get $end)))
        (br_if $found
          (v128.any_true
            (v128.or
              (v128.or
                (v128.or
                  (f32x4.gt (v128.load align=1 (local.get $p)) (local.get $tv))
                  (f32x4.gt (v128.load offset=16 align=1 (local.get $p)) (local.get $tv)))
                (f32x4.gt (v128.load offset=32 align=1 (local.get $p)) (local.get $tv)))
              (f32x4.gt (v128.load offset=48 align=1 (local.get $p)) (local.get $tv)))))
        (local.set $p (i32.add (local.get $p) (i32.const 64)))
        (br $vectors)))
    ;; Then one float at a time: inside the group found, or through the last n mod 16.
    (block $end_reached
      (loop $scalars
        (br_if $end_reached (i32.ge_u (local.get $p) (local.get $end)))
        (if (f32.gt (f32.load (local.get $p)) (local.get $t))
          (then (return (i32.shr_u (i32.sub (local.get $p) (local.get $base)) (i32.const 2)))))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (br $scalars)))
    (local.get $n)))
