//! Neural-network layers over any [`Backend`]: the model owner's parameters enter at load (at
//! P0, and in single-party backends; P1 passes `None` and knows only the shapes), activations
//! are [`Tensor`]s of the backend's vectors.

use alloc::vec::Vec;

use mpc_core::Error;
use mpc_core::transport::Role;

use crate::backend::{Backend, Fused, Result, broadcast_values};
use crate::tensor::Tensor;

/// A secret matrix of backend `B`.
pub type Matrix<B> = Tensor<<B as Backend>::Vector>;

fn matrix<B: Backend>(rows: usize, cols: usize, data: B::Vector) -> Result<Matrix<B>> {
    Tensor::matrix(rows, cols, data)
}

fn check_cols<B: Backend>(x: &Matrix<B>, cols: usize) -> Result<()> {
    if x.cols() != cols { Err(Error::ShapeMismatch) } else { Ok(()) }
}

/// `x · W + b` with W (`inputs × outputs`) prepared under the backend's weight mode.
#[derive(Debug)]
pub struct Linear<B: Backend> {
    weight: B::Weight,
    bias: B::Vector,
    inputs: usize,
    outputs: usize,
}

impl<B: Backend> Linear<B> {
    /// Loads W (row-major `inputs × outputs`) and b at the owner, `None` elsewhere.
    pub fn load(b: &mut B, weight: Option<(Vec<f64>, Vec<f64>)>, inputs: usize, outputs: usize) -> Result<Self> {
        let (w, bias) = weight.unzip();
        let w = b.load_weight(w, inputs, outputs)?;
        let bias = b.input(Role::P0, bias.as_deref(), outputs)?;
        Ok(Self { weight: w, bias, inputs, outputs })
    }

    /// Output width.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// `x · W + b` for x (`rows × inputs`).
    pub fn forward(&self, b: &mut B, x: &Matrix<B>) -> Result<Matrix<B>> {
        check_cols::<B>(x, self.inputs)?;
        let rows = x.rows();
        let y = b.linear(x.data(), rows, &self.weight)?;
        let y = b.add(&y, &broadcast_values(&self.bias, rows, self.outputs, false));
        matrix::<B>(rows, self.outputs, y)
    }

    /// `x · W + b` left at double precision (not truncated), for an activation that fuses the
    /// truncation into its own step ([`Activation::apply_to_product`]).
    pub fn forward_wide(&self, b: &mut B, x: &Matrix<B>) -> Result<Matrix<B>> {
        check_cols::<B>(x, self.inputs)?;
        let (rows, f) = (x.rows(), b.frac_bits());
        let y = b.linear_wide(x.data(), rows, &self.weight)?;
        let bias = b.extend(&broadcast_values(&self.bias, rows, self.outputs, false), f, 0);
        matrix::<B>(rows, self.outputs, b.add(&y, &bias))
    }
}

/// LayerNorm over each row: (x - mean) · γ / √(var + ε) + β, with a real mean and variance
/// (never MPCFormer's BatchNorm substitute).
#[derive(Debug)]
pub struct LayerNorm<B: Backend> {
    gamma: B::Vector,
    beta: B::Vector,
    eps: f64,
    width: usize,
}

impl<B: Backend> LayerNorm<B> {
    /// Loads γ and β at the owner, `None` elsewhere.
    pub fn load(b: &mut B, params: Option<(&[f64], &[f64])>, width: usize, eps: f64) -> Result<Self> {
        if width == 0 {
            return Err(Error::ShapeMismatch);
        }
        // γ enters scaled by √(h / 2^t) (see `normalise`): a public factor the owner applies.
        let scale = libm::sqrt(width as f64 / libm::ldexp(1.0, variance_shift(width) as i32));
        let scaled_gamma: Option<Vec<f64>> = params.map(|(g, _)| g.iter().map(|g| g * scale).collect());
        let gamma = b.input(Role::P0, scaled_gamma.as_deref(), width)?;
        let beta = b.input(Role::P0, params.map(|(_, beta)| beta), width)?;
        Ok(Self { gamma, beta, eps, width })
    }

    /// Normalises each row of x (at the session precision f).
    pub fn forward(&self, b: &mut B, x: &Matrix<B>) -> Result<Matrix<B>> {
        self.normalise(b, x, b.frac_bits())
    }

    /// Normalises each row of x given at double precision (2f bits: a residual sum whose
    /// product was left untruncated, [`Linear::forward_wide`]): the truncation rides on the
    /// normalisation's first opening.
    pub fn forward_wide(&self, b: &mut B, x: &Matrix<B>) -> Result<Matrix<B>> {
        self.normalise(b, x, 2 * b.frac_bits())
    }

    /// Normalises each row of x at `frac` ≥ f bits. γ (per column) and 1/√var (per row)
    /// multiply as broadcast vectors, which open only their short side.
    ///
    /// With 2^L the power of two at most h (μ = h/2^L in [1, 2)), h·x - Σx = h·(x - mean) is
    /// exact in the ring (no division, no opening); read at L more bits it is c = μ·(x - mean).
    /// One opening cuts c to f bits for both its square and its product with γ
    /// ([`Fused::with_square`]); the row sums of the squares, μ²·h·var at 2f bits, are read as
    /// V = μ²·h·var/2^t at 2f + t bits ([`variance_shift`]: V in [1, 2)·var, where the inverse
    /// square root's range was made for), and 1/σ = μ·√(h/2^t)/√(V + ε·μ²·h/2^t), whose μ
    /// cancels c's and whose √(h/2^t) γ carries from the load. Under MPC: one round for c², c·γ
    /// and (for a wide x) x's truncation, four for 1/√, one for the product with 1/σ (whose
    /// truncation rides on that product's opening) and one to truncate the result.
    fn normalise(&self, b: &mut B, x: &Matrix<B>, frac: u32) -> Result<Matrix<B>> {
        check_cols::<B>(x, self.width)?;
        let (rows, h) = (x.rows(), self.width);
        let (f, l) = (b.frac_bits(), log2_below(h));
        let sums = b.sum_rows(x.data(), rows, h);
        let spread = b.sub(&b.mul_int(x.data(), h as i64), &broadcast_values(&sums, rows, h, true));
        let centred = b.extend(&spread, l, -(l as i32));
        let item = Fused {
            x: &centred,
            x_shift: frac + l - f,
            y: &self.gamma,
            y_shift: 0,
            rows,
            len: h,
            broadcast: Some(false),
            with_square: true,
            y_square: false,
            width: None,
            y_width: None,
        };
        let mut products = b.mul_shifted(&[item])?.into_iter();
        let (scaled, squares) = products.next().zip(products.next()).ok_or(Error::ShapeMismatch)?;
        let t = variance_shift(h);
        let v = b.extend(&b.sum_rows(&squares, rows, h), t, -(t as i32));
        let mu = h as f64 / libm::ldexp(1.0, l as i32);
        let v = b.add_scalar(&v, self.eps * mu * mu * h as f64 / libm::ldexp(1.0, t as i32), 2 * f + t);
        let (inv_std, bits) = b.inv_sqrt_wide(&v, 2 * f + t)?;
        // c·γ (2f bits) times 1/σ cut to f bits by the product's opening: 3f bits.
        let item = Fused {
            x: &scaled,
            x_shift: 0,
            y: &inv_std,
            y_shift: bits - f,
            rows,
            len: h,
            broadcast: Some(true),
            with_square: false,
            y_square: false,
            width: None,
            y_width: None,
        };
        let y = b.mul_shifted(&[item])?.pop().ok_or(Error::ShapeMismatch)?;
        let y = b.reduce(&y, 2 * f)?;
        matrix::<B>(rows, h, b.add(&y, &broadcast_values(&self.beta, rows, h, false)))
    }
}

/// ⌊log2 h⌋ for h ≥ 1 (0 for 0).
fn log2_below(h: usize) -> u32 {
    (usize::BITS - 1).saturating_sub(h.leading_zeros())
}

/// The shift t at which a LayerNorm of width h reads the row sums of its squares μ²·h·var
/// ([`LayerNorm::forward`]): t = ⌊log2 h³⌋ - 2L, so that V = μ²·h·var/2^t = (μ³/2^(t-L))·var
/// lies in [1, 2)·var.
fn variance_shift(h: usize) -> u32 {
    // Exact for every width a model can have (h < 2^42); saturated, never a panic, beyond.
    let cube = (h as u128).saturating_mul(h as u128).saturating_mul(h as u128);
    let cube_log = (u128::BITS - 1).saturating_sub(cube.leading_zeros());
    cube_log.saturating_sub(2 * log2_below(h))
}

/// A table of `vocab` rows looked up at the data owner's secret indices.
#[derive(Debug)]
pub struct Embedding<B: Backend> {
    table: B::Weight,
    vocab: usize,
    width: usize,
}

impl<B: Backend> Embedding<B> {
    /// Loads the table (row-major `vocab × width`) at the owner, `None` elsewhere.
    pub fn load(b: &mut B, table: Option<Vec<f64>>, vocab: usize, width: usize) -> Result<Self> {
        Ok(Self { table: b.load_table(table, vocab, width)?, vocab, width })
    }

    /// The rows at `indices` (`Some` at P1 and in single-party backends).
    pub fn forward(&self, b: &mut B, indices: Option<&[usize]>, count: usize) -> Result<Matrix<B>> {
        let rows = b.lookup(&self.table, indices, count, self.vocab)?;
        matrix::<B>(count, self.width, rows)
    }
}

/// A feed-forward activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Activation {
    /// erf GeLU (BERT's).
    Gelu,
    /// MPCFormer's Quad: 0.125x² + 0.25x + 0.5.
    Quad,
    /// ReLU.
    Relu,
}

impl Activation {
    /// Applies the activation elementwise.
    pub fn apply<B: Backend>(self, b: &mut B, x: &Matrix<B>) -> Result<Matrix<B>> {
        let y = match self {
            Activation::Gelu => b.gelu(x.data())?,
            Activation::Quad => b.quad(x.data())?,
            Activation::Relu => b.relu(x.data())?,
        };
        matrix::<B>(x.rows(), x.cols(), y)
    }

    /// Whether [`Activation::apply_to_product`] saves over a truncated product and
    /// [`Activation::apply`]: Quad's square is read off the truncation's opening, GeLU's
    /// truncation off its comparisons' opening.
    pub fn reads_product(self) -> bool {
        matches!(self, Activation::Quad | Activation::Gelu)
    }

    /// Applies the activation to a product at double precision ([`Linear::forward_wide`]):
    /// Quad reads its square off the truncation's opening, GeLU truncates in its comparisons'
    /// opening; the others truncate first.
    pub fn apply_to_product<B: Backend>(self, b: &mut B, z: &Matrix<B>) -> Result<Matrix<B>> {
        match self {
            Activation::Quad => matrix::<B>(z.rows(), z.cols(), crate::numerics::quad_of_product(b, z.data())?),
            Activation::Gelu => matrix::<B>(z.rows(), z.cols(), b.gelu_of_product(z.data())?),
            _ => {
                let y = b.reduce(z.data(), b.frac_bits())?;
                self.apply(b, &matrix::<B>(z.rows(), z.cols(), y)?)
            }
        }
    }
}

/// How attention scores become weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Normaliser {
    /// Softmax.
    Softmax,
    /// MPCFormer's 2Quad: (x + 5)² over its row sum.
    TwoQuad,
    /// MPCFormer's 2ReLU: relu(x) over its row sum.
    TwoRelu,
}

impl Normaliser {
    /// Normalises each row (of length `len`) of `scores`, with a public 0/1 `mask` per entry.
    pub fn apply<B: Backend>(
        self,
        b: &mut B,
        scores: &[B::Elem],
        len: usize,
        mask: Option<&[f64]>,
    ) -> Result<B::Vector> {
        let rows = scores.len() / len.max(1);
        match self {
            Normaliser::Softmax => b.softmax(scores, rows, len, mask),
            Normaliser::TwoQuad => b.two_quad(scores, rows, len, mask),
            Normaliser::TwoRelu => b.two_relu(scores, rows, len, mask),
        }
    }

    /// Normalises scores given as products at double precision ([`MultiHead::scores_wide`]):
    /// 2Quad reads its squares off the truncation's opening; the others truncate first.
    pub fn apply_to_product<B: Backend>(
        self,
        b: &mut B,
        scores: &[B::Elem],
        len: usize,
        mask: Option<&[f64]>,
    ) -> Result<B::Vector> {
        match self {
            Normaliser::TwoQuad => {
                crate::numerics::two_quad_of_product(b, scores, scores.len() / len.max(1), len, mask)
            }
            _ => {
                let y = b.reduce(scores, b.frac_bits())?;
                self.apply(b, &y, len, mask)
            }
        }
    }
}

/// Multi-head self-attention's products, around the normaliser: from the fused Q|K|V
/// projection (`seq × 3·heads·head_dim`, 1/√d folded into Q), the scores of every head, then
/// the heads' contexts. Each step runs all heads in one round.
#[derive(Clone, Copy, Debug)]
pub struct MultiHead {
    /// Heads.
    pub heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

/// The per-head values kept between [`MultiHead::scores`] and [`MultiHead::context`].
#[derive(Debug)]
pub struct HeadValues<V>(Vec<V>);

impl MultiHead {
    fn width(&self) -> usize {
        self.heads * self.head_dim
    }

    /// The scores Q·Kᵀ of every head, stacked (`heads·seq` rows of `seq`), and the values.
    pub fn scores<B: Backend>(&self, b: &mut B, qkv: &Matrix<B>) -> Result<(B::Vector, HeadValues<B::Vector>)> {
        let (wide, values) = self.scores_wide(b, qkv)?;
        Ok((b.reduce(&wide, b.frac_bits())?, values))
    }

    /// The scores at double precision (not truncated), for a normaliser that fuses the
    /// truncation into its own step ([`Normaliser::apply_to_product`]), and the values.
    pub fn scores_wide<B: Backend>(&self, b: &mut B, qkv: &Matrix<B>) -> Result<(B::Vector, HeadValues<B::Vector>)> {
        check_cols::<B>(qkv, 3 * self.width())?;
        let (seq, d, h) = (qkv.rows(), self.head_dim, self.width());
        let columns = |start: usize| -> Vec<B::Elem> {
            qkv.data().chunks_exact(3 * h).flat_map(|row| row[start..start + d].iter().copied()).collect()
        };
        let mut queries = Vec::with_capacity(self.heads);
        let mut keys_t = Vec::with_capacity(self.heads);
        let mut values = Vec::with_capacity(self.heads);
        for head in 0..self.heads {
            queries.push(columns(head * d));
            let k = columns(h + head * d);
            keys_t.push(
                (0..d).flat_map(|c| (0..seq).map(move |r| (r, c))).map(|(r, c)| k[r * d + c]).collect::<Vec<_>>(),
            );
            values.push(b.wrap(columns(2 * h + head * d)));
        }
        let products: Vec<_> = (0..self.heads).map(|i| (&queries[i][..], &keys_t[i][..], seq, d, seq)).collect();
        let scores: Vec<B::Elem> = b.matmul_many_wide(&products)?.iter().flat_map(|s| s.iter().copied()).collect();
        Ok((b.wrap(scores), HeadValues(values)))
    }

    /// The heads' contexts P·V from the normalised scores, merged back to `seq × heads·head_dim`.
    pub fn context<B: Backend>(
        &self,
        b: &mut B,
        probs: &[B::Elem],
        values: &HeadValues<B::Vector>,
        seq: usize,
    ) -> Result<Matrix<B>> {
        let d = self.head_dim;
        if probs.len() != self.heads * seq * seq || values.0.len() != self.heads {
            return Err(Error::ShapeMismatch);
        }
        let products: Vec<_> =
            probs.chunks_exact(seq * seq).zip(&values.0).map(|(p, v)| (p, &v[..], seq, seq, d)).collect();
        let contexts = b.matmul_many(&products)?;
        let merged: Vec<B::Elem> =
            (0..seq).flat_map(|r| contexts.iter().flat_map(move |c| c[r * d..(r + 1) * d].iter().copied())).collect();
        matrix::<B>(seq, self.width(), b.wrap(merged))
    }
}

#[cfg(test)]
mod tests {
    use super::{log2_below, variance_shift};

    #[test]
    fn the_variance_is_read_within_a_factor_of_two_above_it_for_every_width() {
        for h in 1usize..5000 {
            let (l, t) = (log2_below(h), variance_shift(h));
            let mu = h as f64 / libm::ldexp(1.0, l as i32);
            assert!((1.0..2.0).contains(&mu), "h = {h}");
            // V = μ²·h·var / 2^t.
            let factor = mu * mu * h as f64 / libm::ldexp(1.0, t as i32);
            assert!((1.0..2.0).contains(&factor), "h = {h}: V = {factor}·var");
        }
        // Absurd widths saturate instead of overflowing.
        let _ = variance_shift(usize::MAX);
        assert_eq!(log2_below(0), 0);
    }
}
