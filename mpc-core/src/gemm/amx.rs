//! AMX-INT8 kernel: wrapping u64 products from byte-limb products on tile registers.
//!
//! A u64 is eight unsigned bytes, `a = Σ a_i 2^(8i)`; a product modulo 2^64 only needs the limb
//! products with `i + j < 8`: `a·b = Σ_s 2^(8s) Σ_(i+j=s) a_i b_j`. Each `Σ_p a_i[p] b_j[p]` is a
//! byte GEMM that AMX's `TDPBUUD` (or `TDPBUSD` for signed limbs) accumulates exactly in int32
//! tiles: 16×64 bytes of A times 64×16 bytes of B in one instruction, 16K byte products. A full
//! u64 operand costs 36 limb products; a narrow one (owner weights, |w| < 2^22, three signed
//! digits) 21, which is why weights that are used again are packed once ([`PackedRhs`]).
//!
//! Exactness: the sum of shift `s` is needed exactly only for s ≤ 3 (above, only its low 32 bits
//! reach the result, and the tiles' wrapping int32 arithmetic keeps those), where at most four
//! limb pairs add up, each at most `KC · 255 · 255` in magnitude: with `KC = 4096` steps per block,
//! 4 · 4096 · 65025 < 2^31, so the int32 sum is exact whether the limbs are read unsigned (zero
//! extended) or as signed digits (sign extended).
//!
//! Like [`super::x86`], this module holds `unsafe`: the tile instructions are inline assembly
//! (Rust has no stable AMX intrinsics), each on pointers into buffers sized for the tile.
#![allow(unsafe_code)]

use std::arch::asm;
use std::sync::OnceLock;
use std::vec::Vec;

use zeroize::Zeroizing;

/// Rows of a tile (and rows of A per tile).
const TILE_ROWS: usize = 16;
/// Bytes of a tile row: 64 k-steps of A, or 16 columns × 4 k-steps of B.
const TILE_BYTES: usize = 64;
/// Columns of C per tile (int32).
const TILE_COLS: usize = 16;
/// Steps of k per tile product.
const TILE_K: usize = 64;
/// Rows and columns of C per block of four accumulator tiles (2 × 2).
const BLOCK: usize = 32;
/// Steps of k accumulated in int32 before the tiles are folded into u64 (exactness, above; longer
/// blocks were no faster, shorter ones slower: the fold per block costs).
const KC: usize = 4096;
const _: () = assert!(4 * KC * 255 * 255 < 1 << 31);

/// AVX-512F and BW: the folding of the tiles and the packing are compiled for them (every AMX CPU
/// has both).
fn avx512bw() -> bool {
    std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw")
}

/// Whether this CPU and OS run the kernel: AVX-512F/BW, AMX-TILE and AMX-INT8 in CPUID, and the kernel's
/// permission to use the tile state (Linux's `arch_prctl(ARCH_REQ_XCOMP_PERM)`), asked once.
pub(crate) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| avx512bw() && cpu_has_amx_int8() && request_tile_permission())
}

fn cpu_has_amx_int8() -> bool {
    use std::arch::x86_64::__cpuid_count;
    // Leaf 7 exists on every CPU with AVX-512, the only ones that can have AMX; the maximum leaf
    // is checked first all the same.
    if __cpuid_count(0, 0).eax < 7 {
        return false;
    }
    let edx = __cpuid_count(7, 0).edx;
    let amx_tile = edx & (1 << 24) != 0;
    let amx_int8 = edx & (1 << 25) != 0;
    amx_tile && amx_int8
}

/// Asks Linux for the AMX tile data state (XFEATURE_XTILEDATA); `true` when granted. The
/// permission is per process and covers threads started later.
#[cfg(target_os = "linux")]
fn request_tile_permission() -> bool {
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    let ret: i64;
    // SAFETY: the arch_prctl system call with these arguments only changes the process's
    // permitted extended state; it reads and writes no user memory. `syscall` clobbers rcx and
    // r11, declared here.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret == 0
}

/// Other systems: no known way to ask for the tile state, so the kernel is not used.
#[cfg(not(target_os = "linux"))]
fn request_tile_permission() -> bool {
    false
}

/// One cache line: packed operands are vectors of lines, so that every tile row starts on a
/// line boundary (an unaligned tile load splits each row over two lines and runs at a third of
/// the speed).
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Line([u64; 8]);

// Zeroed a line (one 64-byte write) at a time.
impl zeroize::DefaultIsZeroes for Line {}

/// Zeroed 64-byte lines in a byte allocation, at its first 64-byte boundary: `vec![0u8; _]` is
/// a `calloc`, whose fresh pages come zero from the kernel, where an aligned zeroed allocation
/// is a `memalign` and a fill (a pass over every line before the packing writes it once more).
struct ZeroedLines {
    raw: Vec<u8>,
    start: usize,
    bytes: usize,
}

impl ZeroedLines {
    /// At least `bytes` zeroed bytes, a whole number of lines.
    fn new(bytes: usize) -> ZeroedLines {
        let bytes = bytes.next_multiple_of(64);
        let raw = std::vec![0u8; bytes + 63];
        let start = (raw.as_ptr() as usize).wrapping_neg() % 64;
        ZeroedLines { raw, start, bytes }
    }

    fn bytes(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.bytes]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.bytes]
    }

    /// The lines (aligned by construction), for wiping a line at a time.
    fn lines_mut(&mut self) -> &mut [Line] {
        bytemuck::cast_slice_mut(self.bytes_mut())
    }
}

/// How an operand's values are cut into bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Limbs {
    /// Eight unsigned bytes: any u64.
    Unsigned,
    /// `count` signed digits in [-128, 128): values whose signed reading fits `8 · count` bits.
    Signed(usize),
}

impl Limbs {
    fn count(self) -> usize {
        match self {
            Limbs::Unsigned => 8,
            Limbs::Signed(count) => count,
        }
    }

    /// The fewest signed digits that hold every value of `b` read as a signed integer.
    fn narrowest(b: &[u64]) -> Limbs {
        // The highest bit of any |x| (as x XOR its sign: |x| - 1 for a negative x, one less,
        // which the bound's slack below covers): an OR, which vectorises where a max did not.
        let widest = b.iter().fold(0, |acc, &x| acc | (x ^ ((x as i64 >> 63) as u64)));
        // d digits reach ±127·(256^d - 1)/255, a little under 2^(8d-1); 2^(8d-2) is a round
        // bound below it.
        let count = (1..8).find(|&d| widest < 1u64 << (8 * d - 2)).unwrap_or(8);
        if count >= 6 { Limbs::Unsigned } else { Limbs::Signed(count) }
    }

    /// The limbs of `x` as the bytes of a word, least significant first (bytes past `count()`
    /// are zero).
    #[inline(always)]
    fn split(self, x: u64) -> u64 {
        match self {
            Limbs::Unsigned => x,
            Limbs::Signed(count) => {
                // With 128 added to every digit position, each byte is its digit + 128 (no
                // carries while x is in range): flipping the top bit of each byte reads it as
                // the digit in [-128, 128).
                let bias = 0x8080_8080_8080_8080u64 >> (8 * (8 - count));
                (x.wrapping_add(bias) ^ bias) & (u64::MAX >> (8 * (8 - count)))
            }
        }
    }
}

/// A right-hand operand B (k × n) cut into byte limbs and laid out for B tiles, made once and
/// used for every product with it: the packing costs about what a 16-row product does.
///
/// Layout: `[limb][column block of 16][k / 4][16 columns × 4 k-steps]`, k padded to a multiple of
/// 64 and n to a multiple of 32, zeros in the padding.
pub struct PackedRhs {
    k: usize,
    n: usize,
    k_padded: usize,
    n_padded: usize,
    limbs: Limbs,
    /// Zeroed on drop.
    data: ZeroedLines,
}

impl Drop for PackedRhs {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(self.data.lines_mut());
    }
}

impl core::fmt::Debug for PackedRhs {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PackedRhs({}x{}, {:?})", self.k, self.n, self.limbs)
    }
}

impl PackedRhs {
    /// Packs row-major `b` (k × n) with the fewest limbs its values need.
    ///
    /// # Panics
    /// If `b` is shorter than k × n.
    pub(crate) fn new(k: usize, n: usize, b: &[u64], threads: usize) -> PackedRhs {
        Self::with_limbs(k, n, b, Limbs::narrowest(&b[..k * n]), threads)
    }

    /// Packs `b` as eight unsigned limbs (any values, no scan).
    pub(crate) fn unsigned(k: usize, n: usize, b: &[u64], threads: usize) -> PackedRhs {
        Self::with_limbs(k, n, b, Limbs::Unsigned, threads)
    }

    /// Packs `b` as eight unsigned limbs, drawn band by band: `fill` writes the next rows of B
    /// (whole rows, in order) into the slice it is given, which is packed and then overwritten
    /// by the next band (no k × n buffer of B; the band's buffer is wiped at the end).
    pub(crate) fn drawn(k: usize, n: usize, fill: &mut dyn FnMut(&mut [u64]), threads: usize) -> PackedRhs {
        let buffer = Zeroizing::new(std::vec![0u64; k.min(DRAWN_ROWS) * n]);
        Self::by_bands(k, n, Rows::Drawn { fill, buffer }, Limbs::Unsigned, threads)
    }

    /// Packs `b` with `limbs` (see [`PackedRhs::by_bands`]).
    fn with_limbs(k: usize, n: usize, b: &[u64], limbs: Limbs, threads: usize) -> PackedRhs {
        assert!(b.len() >= k * n, "gemm operand too short");
        Self::by_bands(k, n, Rows::Slice(b), limbs, threads)
    }

    /// Packs the rows of B as `rows` gives them (all at once, or a drawn band of
    /// [`DRAWN_ROWS`] at a time), each on up to `threads` threads, each a range of column
    /// blocks.
    fn by_bands(k: usize, n: usize, mut rows: Rows<'_>, limbs: Limbs, threads: usize) -> PackedRhs {
        let k_padded = k.next_multiple_of(TILE_K);
        let n_padded = n.next_multiple_of(BLOCK);
        let limb_len = k_padded * n_padded;
        let mut lines = ZeroedLines::new(limbs.count() * limb_len);
        let data = lines.bytes_mut();
        // A column block of one limb is contiguous: each thread gets the same range of blocks
        // in every limb's plane.
        let block_len = (k_padded / 4) * TILE_BYTES;
        let blocks = n_padded / TILE_COLS;
        if limb_len == 0 {
            return PackedRhs { k, n, k_padded, n_padded, limbs, data: lines };
        }
        let threads = if k * n < MIN_PARALLEL_PACKING { 1 } else { threads.clamp(1, blocks) };
        let per_thread = blocks.div_ceil(threads);
        let mut parts: Vec<Vec<&mut [u8]>> = (0..threads).map(|_| Vec::new()).collect();
        for plane in data.chunks_mut(limb_len) {
            for (part, range) in parts.iter_mut().zip(plane.chunks_mut(per_thread * block_len)) {
                part.push(range);
            }
        }
        let (wide, vbmi) = (avx512bw(), avx512vbmi());
        let band_rows = rows.band_rows(k);
        for first_row in (0..k).step_by(band_rows) {
            let band = rows.band(first_row, (k - first_row).min(band_rows), n);
            let pack = |index: usize, planes: &mut [&mut [u8]]| {
                let first_col = index * per_thread * TILE_COLS;
                let columns = Columns { k, n, b: band, first_row, limbs, k_padded, first_col };
                if vbmi {
                    // SAFETY: AVX-512F, BW and VBMI, all that `pack_columns_vbmi` is compiled
                    // for, were just detected on this CPU.
                    unsafe { pack_columns_vbmi(columns, planes) }
                } else if wide {
                    // SAFETY: AVX-512F and BW, all that `pack_columns_avx512` is compiled for,
                    // were just detected on this CPU.
                    unsafe { pack_columns_avx512(columns, planes) }
                } else {
                    pack_columns::<false>(columns, planes)
                }
            };
            std::thread::scope(|scope| {
                let mut parts = parts.iter_mut().enumerate();
                let own = parts.next();
                for (index, planes) in parts {
                    scope.spawn(move || pack(index, planes));
                }
                if let Some((index, planes)) = own {
                    pack(index, planes);
                }
            });
        }
        PackedRhs { k, n, k_padded, n_padded, limbs, data: lines }
    }

    /// Rows of B.
    pub fn rows(&self) -> usize {
        self.k
    }

    /// Columns of B.
    pub fn cols(&self) -> usize {
        self.n
    }

    /// The start of the B tile of `limb`, column block `block` (16 columns) and k-step `p`.
    fn tile(&self, limb: usize, block: usize, p: usize) -> usize {
        limb * self.k_padded * self.n_padded + (block * (self.k_padded / 4) + p / 4) * TILE_BYTES
    }
}

/// Packings of fewer values stay on one thread.
const MIN_PARALLEL_PACKING: usize = 1 << 16;

/// Rows of B (k × n) were packed from: the whole matrix, or bands drawn one at a time.
enum Rows<'a> {
    /// The whole matrix, row-major.
    Slice(&'a [u64]),
    /// Each band drawn by `fill` into `buffer` (wiped on drop).
    Drawn { fill: &'a mut dyn FnMut(&mut [u64]), buffer: Zeroizing<Vec<u64>> },
}

impl Rows<'_> {
    /// Rows of B (k × n) given at a time: all of a slice (one pass, one set of threads), a band
    /// of a drawn matrix.
    fn band_rows(&self, k: usize) -> usize {
        match self {
            Rows::Slice(_) => k.max(1),
            Rows::Drawn { .. } => DRAWN_ROWS,
        }
    }

    /// Rows `first..first + rows` of B (each `n` long), row-major.
    fn band(&mut self, first: usize, rows: usize, n: usize) -> &[u64] {
        match self {
            Rows::Slice(b) => &b[first * n..(first + rows) * n],
            Rows::Drawn { fill, buffer } => {
                let band = &mut buffer[..rows * n];
                fill(band);
                band
            }
        }
    }
}

/// Rows of a drawn band ([`PackedRhs::drawn`]): one band of [`pack_columns`].
const DRAWN_ROWS: usize = 4 * QUADS_PER_BAND;

/// What one packing thread packs: the columns from `first_col` on of the rows of B (k × n)
/// that `b` holds from row `first_row` on (a multiple of 4), in `limbs`, k padded to
/// `k_padded`.
#[derive(Clone, Copy)]
struct Columns<'a> {
    k: usize,
    n: usize,
    b: &'a [u64],
    first_row: usize,
    limbs: Limbs,
    k_padded: usize,
    first_col: usize,
}

/// [`pack_columns`] compiled for AVX-512 (a line's limbs are a shift and a narrowing store).
#[target_feature(enable = "avx512f,avx512bw")]
fn pack_columns_avx512(columns: Columns<'_>, planes: &mut [&mut [u8]]) {
    pack_columns::<false>(columns, planes)
}

/// [`pack_columns`] with whole tile lines transposed in registers ([`pack_line_vbmi`]) and
/// streamed: about three times the AVX-512 value loop's rate on a model's weights here.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
fn pack_columns_vbmi(columns: Columns<'_>, planes: &mut [&mut [u8]]) {
    pack_columns::<true>(columns, planes);
    // The streamed stores are ordered before whatever follows (another thread's reads after
    // the join included).
    std::arch::x86_64::_mm_sfence();
}

/// AVX-512 VBMI, beside F and BW, for the packing's byte transpose (every AMX CPU has it too;
/// it is checked all the same).
fn avx512vbmi() -> bool {
    avx512bw() && std::is_x86_feature_detected!("avx512vbmi")
}

/// One whole tile line of B (4 k-steps × 16 columns from `b` at `first`, rows `n` apart) into
/// each limb's plane at `at`: the line of limb L holds byte L of value (p, c) at 4c + p.
///
/// In registers: each row's two halves (8 values) are split into limbs if signed, then an 8 × 8
/// byte transpose puts each limb's 8 bytes in one quadword (`vpermb`); byte and word unpacks
/// interleave the four rows' quadwords (4c + p within each 128-bit lane, a limb per lane pair);
/// a 4 × 4 transpose of 128-bit lanes gathers each limb's 64 bytes.
///
/// # Safety
/// The CPU must have AVX-512F, BW and VBMI.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn pack_line_vbmi(b: &[u64], first: usize, n: usize, limbs: Limbs, planes: &mut [&mut [u8]], at: usize) {
    use std::arch::x86_64::*;
    // Byte c·8 + L of a half row (value c, byte L) goes to L·8 + c.
    let transpose: [u8; 64] = core::array::from_fn(|i| ((i % 8) * 8 + i / 8) as u8);
    // SAFETY: a 64-byte read of a 64-byte array.
    let transpose = unsafe { _mm512_loadu_si512(transpose.as_ptr().cast()) };
    let count = limbs.count();
    let (bias, mask) = match limbs {
        Limbs::Unsigned => (0, u64::MAX),
        Limbs::Signed(c) => (0x8080_8080_8080_8080u64 >> (8 * (8 - c)), u64::MAX >> (8 * (8 - c))),
    };
    let (bias, mask) = (_mm512_set1_epi64(bias as i64), _mm512_set1_epi64(mask as i64));
    let half = |p: usize, h: usize| {
        let values = &b[first + p * n + 8 * h..][..8];
        // SAFETY: `values` holds 8 u64, the 64 bytes read.
        let v = unsafe { _mm512_loadu_si512(values.as_ptr().cast()) };
        // Limbs::split, eight values at once.
        let v = _mm512_and_si512(_mm512_xor_si512(_mm512_add_epi64(v, bias), bias), mask);
        _mm512_permutexvar_epi8(transpose, v)
    };
    // Per half h: the even limbs' lines (one per 128-bit lane: limbs 0, 2, 4, 6), then the odd.
    let mut quarters = [[_mm512_setzero_si512(); 4]; 2];
    for h in 0..2 {
        let [r0, r1, r2, r3] = [half(0, h), half(1, h), half(2, h), half(3, h)];
        let (lo01, hi01) = (_mm512_unpacklo_epi8(r0, r1), _mm512_unpackhi_epi8(r0, r1));
        let (lo23, hi23) = (_mm512_unpacklo_epi8(r2, r3), _mm512_unpackhi_epi8(r2, r3));
        quarters[0][2 * h] = _mm512_unpacklo_epi16(lo01, lo23);
        quarters[0][2 * h + 1] = _mm512_unpackhi_epi16(lo01, lo23);
        quarters[1][2 * h] = _mm512_unpacklo_epi16(hi01, hi23);
        quarters[1][2 * h + 1] = _mm512_unpackhi_epi16(hi01, hi23);
    }
    for (parity, [q0, q1, q2, q3]) in quarters.into_iter().enumerate() {
        let t0 = _mm512_shuffle_i64x2::<0b01_00_01_00>(q0, q1);
        let t1 = _mm512_shuffle_i64x2::<0b11_10_11_10>(q0, q1);
        let t2 = _mm512_shuffle_i64x2::<0b01_00_01_00>(q2, q3);
        let t3 = _mm512_shuffle_i64x2::<0b11_10_11_10>(q2, q3);
        let lines = [
            _mm512_shuffle_i64x2::<0b10_00_10_00>(t0, t2),
            _mm512_shuffle_i64x2::<0b11_01_11_01>(t0, t2),
            _mm512_shuffle_i64x2::<0b10_00_10_00>(t1, t3),
            _mm512_shuffle_i64x2::<0b11_01_11_01>(t1, t3),
        ];
        for (lane, line) in lines.into_iter().enumerate() {
            let limb = 2 * lane + parity;
            if limb < count {
                let out = &mut planes[limb][at..at + TILE_BYTES];
                if out.as_ptr().align_offset(TILE_BYTES) == 0 {
                    // Streamed past the caches: the packing is read back much later, and a
                    // plain store would first read every line it fills.
                    // SAFETY: `out` is 64 bytes, the write, at a 64-byte boundary (checked).
                    unsafe { _mm512_stream_si512(out.as_mut_ptr().cast(), line) };
                } else {
                    // SAFETY: `out` is 64 bytes, the write.
                    unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), line) };
                }
            }
        }
    }
}

/// Packs the columns from `first_col` of the rows `b` holds into `planes` (one per limb, each a
/// run of whole column blocks in the layout of [`PackedRhs`], zeroed).
///
/// A band of k-quads at a time, across the column blocks: each quad's 16 columns × 4 k-steps
/// are read row by row (contiguous), and each limb's 64 bytes of the tile line are then written
/// at once, one plane after the other.
#[inline(always)]
fn pack_columns<const VBMI: bool>(columns: Columns<'_>, planes: &mut [&mut [u8]]) {
    let Columns { k, n, b, first_row, limbs, k_padded, first_col } = columns;
    let block_len = (k_padded / 4) * TILE_BYTES;
    let cols = planes.first().map_or(0, |p| p.len() / block_len * TILE_COLS);
    let last_col = n.min(first_col + cols);
    // One tile line's values, column-major (16 columns × 4 k-steps); zeroed at the end.
    let mut values = Zeroizing::new([0u64; TILE_BYTES]);
    let quads = first_row / 4..(first_row + b.len() / n.max(1)).min(k).div_ceil(4);
    // A band of rows at a time, across every column block: the band's rows are read along
    // (a column block at a time down the whole matrix would stride by a row per read).
    for band in quads.clone().step_by(QUADS_PER_BAND) {
        for col0 in (first_col..last_col).step_by(TILE_COLS) {
            let width = (last_col - col0).min(TILE_COLS);
            let block = (col0 - first_col) / TILE_COLS;
            for quad in band..quads.end.min(band + QUADS_PER_BAND) {
                let depth = (k - 4 * quad).min(4);
                let at = (block * (k_padded / 4) + quad) * TILE_BYTES;
                let line = (4 * quad - first_row) * n + col0;
                if VBMI && width == TILE_COLS && depth == 4 {
                    // SAFETY: `VBMI` is set only by `pack_columns_vbmi`, whose callers detected
                    // AVX-512F, BW and VBMI; the line's 4 rows × 16 values are inside `b`.
                    unsafe { pack_line_vbmi(b, line, n, limbs, planes, at) };
                    continue;
                }
                if width < TILE_COLS || depth < 4 {
                    values.fill(0);
                }
                for p in 0..depth {
                    let row = &b[line + p * n..][..width];
                    for (c, &x) in row.iter().enumerate() {
                        values[c * 4 + p] = limbs.split(x);
                    }
                }
                for (limb, plane) in planes.iter_mut().enumerate() {
                    limb_bytes(&mut plane[at..at + TILE_BYTES], &values[..], limb);
                }
            }
        }
    }
}

/// k-quads (4 rows each) of a band in [`pack_columns`] (256 rows: 15 % faster than whole
/// columns on a 768 x 3072 operand in fresh memory, on the Intel Xeon of this project's notes).
const QUADS_PER_BAND: usize = 64;

/// Byte `limb` of each of `values` into `line` (a shift and a narrowing store per value: one
/// vector instruction per eight where compiled for AVX-512BW).
#[inline(always)]
fn limb_bytes(line: &mut [u8], values: &[u64], limb: usize) {
    for (byte, &value) in line.iter_mut().zip(values) {
        *byte = (value >> (8 * limb)) as u8;
    }
}

/// The left operand A (m × k) cut into eight unsigned byte planes, each tile's 16 rows × 64
/// bytes contiguous (`[limb][row block of 16][k / 64][16 × 64]`: a tile is one 1 KB line run,
/// which the hardware prefetcher follows), m padded to 32 and k to 64 with zeros.
struct PackedLhs {
    row_blocks: usize,
    k_tiles: usize,
    /// From (and, zeroed, back to) this thread's [`LHS_BUFFER`].
    data: Vec<Line>,
}

/// Packed A buffers up to this size are kept by their thread for the next product: a fresh
/// allocation per product costs page faults on every line (the largest of a BERT query at 128
/// tokens is the embedding lookup's, 128 x 30522 values: 31 MB).
const KEPT_LHS_BYTES: usize = 64 << 20;

std::thread_local! {
    /// The buffer of this thread's last packed A (zeroed), for the next.
    static LHS_BUFFER: core::cell::Cell<Vec<Line>> = const { core::cell::Cell::new(Vec::new()) };
}

impl Drop for PackedLhs {
    fn drop(&mut self) {
        let mut lines = core::mem::take(&mut self.data);
        zeroize::Zeroize::zeroize(lines.as_mut_slice());
        if lines.len() * 64 <= KEPT_LHS_BYTES {
            LHS_BUFFER.set(lines);
        }
    }
}

/// Grows this thread's kept buffer to the packing of an m × k left operand (written with
/// zeros, as the buffer is kept), when that is within [`KEPT_LHS_BYTES`].
pub(crate) fn warm_lhs(m: usize, k: usize) {
    let lines = 8 * PackedLhs::plane(m, k) / 64;
    if lines * 64 <= KEPT_LHS_BYTES {
        let mut kept = LHS_BUFFER.take();
        if kept.len() < lines {
            kept.resize(lines, Line::default());
        }
        LHS_BUFFER.set(kept);
    }
}

/// Bytes of one tile.
const TILE_SIZE: usize = TILE_ROWS * TILE_BYTES;

impl PackedLhs {
    /// Bytes of one limb's plane for an m × k operand.
    fn plane(m: usize, k: usize) -> usize {
        m.next_multiple_of(BLOCK) / TILE_ROWS * k.div_ceil(TILE_K) * TILE_SIZE
    }

    fn new(m: usize, k: usize, a: &[u64]) -> PackedLhs {
        let row_blocks = m.next_multiple_of(BLOCK) / TILE_ROWS;
        let k_tiles = k.div_ceil(TILE_K);
        let plane = Self::plane(m, k);
        // The kept buffer is all zeros (zeroed when its last packing was dropped).
        let mut lines = LHS_BUFFER.take();
        lines.resize(8 * plane / 64, Line::default());
        let data: &mut [u8] = bytemuck::cast_slice_mut(&mut lines);
        if avx512bw() {
            // SAFETY: AVX-512F and BW, all that `pack_rows_avx512` is compiled for, were just
            // detected on this CPU.
            unsafe { pack_rows_avx512(m, k, a, k_tiles, plane, data) }
        } else {
            pack_rows(m, k, a, k_tiles, plane, data)
        }
        PackedLhs { row_blocks, k_tiles, data: lines }
    }

    /// Rows, padded.
    fn rows(&self) -> usize {
        self.row_blocks * TILE_ROWS
    }

    /// k, padded.
    fn depth(&self) -> usize {
        self.k_tiles * TILE_K
    }

    /// The start of the A tile of `limb`, rows from `row` (a multiple of 16) and k-step `p`.
    fn tile(&self, limb: usize, row: usize, p: usize) -> usize {
        ((limb * self.row_blocks + row / TILE_ROWS) * self.k_tiles + p / TILE_K) * TILE_SIZE
    }
}

/// Packs the rows of `a` (m × k) into the byte planes of [`PackedLhs`] (`plane` bytes each, zeroed):
/// a tile row's 64 k-steps of one limb are 64 consecutive values' bytes, written as one line.
#[inline(always)]
fn pack_rows(m: usize, k: usize, a: &[u64], k_tiles: usize, plane: usize, data: &mut [u8]) {
    for (row, values) in a[..m * k].chunks(k.max(1)).enumerate().take(m) {
        let row_start = (row / TILE_ROWS) * k_tiles * TILE_SIZE + (row % TILE_ROWS) * TILE_BYTES;
        for (tile, steps) in values.chunks(TILE_K).enumerate() {
            let at = row_start + tile * TILE_SIZE;
            for limb in 0..8 {
                limb_bytes(&mut data[limb * plane + at..][..steps.len()], steps, limb);
            }
        }
    }
}

/// [`pack_rows`] compiled for AVX-512.
#[target_feature(enable = "avx512f,avx512bw")]
fn pack_rows_avx512(m: usize, k: usize, a: &[u64], k_tiles: usize, plane: usize, data: &mut [u8]) {
    pack_rows(m, k, a, k_tiles, plane, data)
}

/// `c += a · b` for row-major `a` (m×k), `b` (k×n), `c` (m×n); `b` is packed here.
///
/// # Panics
/// If a slice is shorter than its dimensions require, or the CPU lacks AMX (callers check
/// [`available`]).
pub(crate) fn gemm_acc(m: usize, k: usize, n: usize, a: &[u64], b: &[u64], c: &mut [u64]) {
    assert!(b.len() >= k * n, "gemm operand too short");
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    gemm_acc_packed(m, a, &PackedRhs::unsigned(k, n, b, 1), c);
}

/// `c += a · b` with `b` packed.
///
/// # Panics
/// If `a` or `c` is shorter than its dimensions require, or the CPU lacks AMX.
pub(crate) fn gemm_acc_packed(m: usize, a: &[u64], b: &PackedRhs, c: &mut [u64]) {
    let (k, n) = (b.k, b.n);
    assert!(a.len() >= m * k && c.len() >= m * n, "gemm operand too short");
    assert!(available(), "AMX kernel called on a CPU or OS without AMX");
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let a = PackedLhs::new(m, k, a);
    let signed = matches!(b.limbs, Limbs::Signed(_));
    let b_limbs = b.limbs.count();
    // One block's tiles for each of the eight shifts, folded into C once.
    let mut tiles = [const { Accumulators([0; 4 * TILE_ROWS * TILE_COLS]) }; 8];
    let _config = TileConfig::load();
    for k0 in (0..a.depth()).step_by(KC) {
        let k1 = (k0 + KC).min(a.depth());
        for col0 in (0..b.n_padded).step_by(BLOCK) {
            for row0 in (0..a.rows()).step_by(BLOCK) {
                for (shift, tiles) in tiles.iter_mut().enumerate() {
                    let pairs = (shift.saturating_sub(b_limbs - 1)..=shift).map(|i| (i, shift - i));
                    // SAFETY: every tile is inside its packed buffer: rows row0..row0+32 <=
                    // a.rows(), k-steps k0..k1 <= a.depth() = b.k_padded, columns col0..col0+32 <= n_padded,
                    // limbs i < 8 and j < b_limbs (see `block_product`).
                    unsafe { block_product(&a, b, row0, col0 / TILE_COLS, k0, k1, pairs, signed, &mut tiles.0) };
                }
                // SAFETY: `available()` (asserted above) requires AVX-512F besides AMX.
                unsafe { fold(&tiles, signed, row0, col0, m, n, c) };
            }
        }
    }
    // Partial sums of products of shares (the dealer's C): zeroed like the packings.
    for tiles in &mut tiles {
        zeroize::Zeroize::zeroize(&mut tiles.0);
    }
}

/// The four int32 accumulator tiles of a block as stored, line-aligned (see [`Line`]).
#[repr(C, align(64))]
struct Accumulators([i32; 4 * TILE_ROWS * TILE_COLS]);

/// Adds a 32 × 32 block at (`row0`, `col0`) into `c` (m × n, the part inside it): each value is
/// the sum over the eight shifts s of that shift's int32 tile value, read as signed or unsigned,
/// times 2^(8s). One pass over C per block; compiled for AVX-512 (every AMX CPU has it).
#[target_feature(enable = "avx512f")]
fn fold(tiles: &[Accumulators; 8], signed: bool, row0: usize, col0: usize, m: usize, n: usize, c: &mut [u64]) {
    let cols = BLOCK.min(n.saturating_sub(col0));
    let widen = |v: i32| if signed { v as i64 as u64 } else { v as u32 as u64 };
    // Partial sums of products of shares: one scratch, zeroed at the end like the tiles.
    let mut sum = Zeroizing::new([0u64; TILE_COLS]);
    for r in 0..BLOCK.min(m.saturating_sub(row0)) {
        let at = (row0 + r) * n + col0;
        for (half, dst) in c[at..at + cols].chunks_mut(TILE_COLS).enumerate() {
            // Tiles are (0,0), (0,1), (1,0), (1,1): row block r / 16, column block `half`.
            let start = (2 * (r / TILE_ROWS) + half) * TILE_ROWS * TILE_COLS + (r % TILE_ROWS) * TILE_COLS;
            sum.fill(0);
            for (shift, tiles) in tiles.iter().enumerate() {
                for (s, &v) in sum.iter_mut().zip(&tiles.0[start..start + TILE_COLS]) {
                    *s = s.wrapping_add(widen(v) << (8 * shift));
                }
            }
            for (d, s) in dst.iter_mut().zip(sum.iter()) {
                *d = d.wrapping_add(*s);
            }
        }
    }
}

/// The 32×32 block of C at (`row0`, column block `block0`) summed over `pairs` of limbs and the
/// k-steps `k0..k1`, into `tiles` (four 16×16 int32 tiles, row-major, in the order (0,0), (0,1),
/// (1,0), (1,1)).
///
/// # Safety
/// The tile configuration of [`TileConfig::load`] must be in force; rows `row0..row0 + 32` must
/// be inside `a`'s padded rows, columns `16 · block0..16 · block0 + 32` inside `b`'s padded
/// columns, `k0..k1` inside the padded k and a multiple of 64, and each pair's limbs inside
/// their operand's.
#[allow(clippy::too_many_arguments)]
unsafe fn block_product(
    a: &PackedLhs,
    b: &PackedRhs,
    row0: usize,
    block0: usize,
    k0: usize,
    k1: usize,
    pairs: impl Iterator<Item = (usize, usize)>,
    signed: bool,
    tiles: &mut [i32; 4 * TILE_ROWS * TILE_COLS],
) {
    // Of every asm block below: the tile registers hold nothing of the compiler's (Rust emits no
    // AMX code), so keeping them across blocks is sound; each `tileloadd` reads 16 rows of 64
    // bytes from a start whose 16 rows at the given stride lie inside the packed buffer (the
    // caller's contract); `tilestored` writes 16 rows of 64 bytes inside `tiles`.
    // SAFETY: `tilezero` touches tile registers only (configured by the caller's contract).
    unsafe {
        asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack));
    }
    let (a_start, b_start) = (a.data.as_ptr().cast::<u8>(), b.data.bytes().as_ptr());
    for (i, j) in pairs {
        for p in (k0..k1).step_by(TILE_K) {
            let a0 = a_start.wrapping_add(a.tile(i, row0, p));
            let a1 = a_start.wrapping_add(a.tile(i, row0 + TILE_ROWS, p));
            let b0 = b_start.wrapping_add(b.tile(j, block0, p));
            let b1 = b_start.wrapping_add(b.tile(j, block0 + 1, p));
            // SAFETY: see above.
            unsafe {
                // Each load sits right before the first product that needs it, so that loads
                // overlap the products before them.
                if signed {
                    asm!(
                        "tileloadd tmm4, [{a0} + {s}*1]",
                        "tileloadd tmm6, [{b0} + {s}*1]",
                        "tdpbusd tmm0, tmm4, tmm6",
                        "tileloadd tmm7, [{b1} + {s}*1]",
                        "tdpbusd tmm1, tmm4, tmm7",
                        "tileloadd tmm5, [{a1} + {s}*1]",
                        "tdpbusd tmm2, tmm5, tmm6",
                        "tdpbusd tmm3, tmm5, tmm7",
                        a0 = in(reg) a0, a1 = in(reg) a1, b0 = in(reg) b0, b1 = in(reg) b1, s = in(reg) TILE_BYTES,
                        options(nostack, readonly),
                    );
                } else {
                    asm!(
                        "tileloadd tmm4, [{a0} + {s}*1]",
                        "tileloadd tmm6, [{b0} + {s}*1]",
                        "tdpbuud tmm0, tmm4, tmm6",
                        "tileloadd tmm7, [{b1} + {s}*1]",
                        "tdpbuud tmm1, tmm4, tmm7",
                        "tileloadd tmm5, [{a1} + {s}*1]",
                        "tdpbuud tmm2, tmm5, tmm6",
                        "tdpbuud tmm3, tmm5, tmm7",
                        a0 = in(reg) a0, a1 = in(reg) a1, b0 = in(reg) b0, b1 = in(reg) b1, s = in(reg) TILE_BYTES,
                        options(nostack, readonly),
                    );
                }
            }
        }
    }
    let out = tiles.as_mut_ptr();
    let size = TILE_ROWS * TILE_COLS;
    // SAFETY: see above; `tiles` holds four tiles of 16 × 16 int32 (64-byte rows).
    unsafe {
        asm!(
            "tilestored [{t0} + {s}*1], tmm0",
            "tilestored [{t1} + {s}*1], tmm1",
            "tilestored [{t2} + {s}*1], tmm2",
            "tilestored [{t3} + {s}*1], tmm3",
            t0 = in(reg) out, t1 = in(reg) out.add(size), t2 = in(reg) out.add(2 * size), t3 = in(reg) out.add(3 * size),
            s = in(reg) TILE_BYTES,
            options(nostack),
        );
    }
}

/// The tile configuration in force on this thread while it lives: eight tiles of 16 rows × 64
/// bytes (palette 1); dropping it releases the tile state.
struct TileConfig;

impl TileConfig {
    fn load() -> TileConfig {
        let mut config = [0u8; 64];
        config[0] = 1; // palette 1
        for tile in 0..8 {
            config[16 + 2 * tile] = TILE_BYTES as u8; // bytes per row (little-endian u16)
            config[48 + tile] = TILE_ROWS as u8; // rows
        }
        // SAFETY: `available()` (checked by the caller) found AMX-TILE and the OS's permission;
        // `ldtilecfg` reads the 64 bytes of `config`, a valid palette-1 configuration.
        unsafe { asm!("ldtilecfg [{0}]", in(reg) config.as_ptr(), options(nostack, readonly)) };
        TileConfig
    }
}

impl Drop for TileConfig {
    fn drop(&mut self) {
        // SAFETY: the configuration was loaded by `load`; releasing returns the tiles to their
        // initial state (and lets the OS skip saving them).
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_digits_rebuild_the_value() {
        for &x in &[0i64, 1, -1, 127, 128, -128, -129, 65535, -(1 << 22), (1 << 23) - 1, -(1 << 23)] {
            let limbs = Limbs::narrowest(&[x as u64]);
            let word = limbs.split(x as u64);
            let digits = word.to_le_bytes();
            assert!(digits[limbs.count()..].iter().all(|&d| d == 0), "{x}: bytes past the digits");
            let back = digits[..limbs.count()]
                .iter()
                .rev()
                .fold(0i64, |acc, &d| acc.wrapping_shl(8).wrapping_add(d as i8 as i64));
            assert_eq!(back, x, "{x} in {limbs:?}");
        }
        assert_eq!(Limbs::narrowest(&[(1 << 17) as u64, (-(1i64 << 17)) as u64]), Limbs::Signed(3));
        assert_eq!(Limbs::narrowest(&[u64::MAX / 3]), Limbs::Unsigned);
    }

    /// Every limb plane of `b` (k × n), packed on one thread by the value-at-a-time loop or by
    /// the register transpose.
    fn planes(k: usize, n: usize, b: &[u64], limbs: Limbs, vbmi: bool) -> Vec<u8> {
        let limb_len = k.next_multiple_of(TILE_K) * n.next_multiple_of(BLOCK);
        let mut data = std::vec![0u8; limbs.count() * limb_len];
        let mut planes: Vec<&mut [u8]> = data.chunks_mut(limb_len).collect();
        let columns = Columns { k, n, b, first_row: 0, limbs, k_padded: k.next_multiple_of(TILE_K), first_col: 0 };
        if vbmi {
            // SAFETY: the caller checked AVX-512F, BW and VBMI.
            unsafe { pack_columns_vbmi(columns, &mut planes) }
        } else {
            pack_columns::<false>(columns, &mut planes)
        }
        data
    }

    /// A xorshift64 stream from `state` (test values, not secrets).
    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    #[test]
    fn a_drawn_operand_packs_as_the_whole_one_does() {
        // The packing needs no AMX (only the products do): compare the bytes on any CPU.
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        // Bands of 256 rows: one, a ragged second and third; a parallel packing (k·n >= 2^16).
        for (k, n, threads) in [(5, 3, 1), (256, 40, 1), (300, 17, 1), (600, 200, 2), (777, 130, 3)] {
            let b: Vec<u64> = (0..k * n).map(|_| next()).collect();
            let whole = PackedRhs::unsigned(k, n, &b, threads);
            let mut at = 0;
            let mut bands = 0;
            let drawn = PackedRhs::drawn(
                k,
                n,
                &mut |rows: &mut [u64]| {
                    assert_eq!(rows.len() % n, 0, "whole rows");
                    rows.copy_from_slice(&b[at..at + rows.len()]);
                    at += rows.len();
                    bands += 1;
                },
                threads,
            );
            assert_eq!(at, k * n, "every row drawn once");
            assert_eq!(bands, k.div_ceil(DRAWN_ROWS));
            assert!(whole.data.bytes() == drawn.data.bytes(), "{k} x {n} on {threads} threads");
        }
    }

    #[test]
    fn the_register_transpose_packs_as_the_value_loop_does() {
        if !avx512vbmi() {
            std::eprintln!("no AVX-512 VBMI on this CPU: the value loop packs, nothing to compare");
            return;
        }
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        // Whole lines, ragged edges in k and n, both kinds of limbs.
        for (k, n) in [(4, 16), (8, 32), (7, 33), (64, 48), (130, 17), (256, 80), (5, 3)] {
            for limbs in [Limbs::Unsigned, Limbs::Signed(1), Limbs::Signed(3), Limbs::Signed(5)] {
                let b: Vec<u64> = (0..k * n)
                    .map(|_| match limbs {
                        Limbs::Unsigned => next(),
                        Limbs::Signed(c) => ((next() as i64) >> (64 - (8 * c as u32 - 2))) as u64,
                    })
                    .collect();
                assert!(Limbs::narrowest(&b).count() <= limbs.count());
                let (scalar, vector) = (planes(k, n, &b, limbs, false), planes(k, n, &b, limbs, true));
                assert!(scalar == vector, "{k} x {n}, {limbs:?}");
            }
        }
    }
}
