// A spatial model with a Hilbert-space approximate GP prior (HSGP;
// Riutort-Mayol et al. 2023), the baseline for gp_surrogate.stan.
//
// On the domain [0, 1]^dim centred at 0.5 and extended to [-B, B]^dim with
// B = 0.5 * c_boundary, f = PHI (sqrt(S(sqrt(lambda))) .* beta) with
// beta ~ N(0, I): M Laplacian eigenfunctions per dimension (M^2 for 2-D, as
// tensor products) weighted by the kernel's spectral density S. The
// lengthscale is fixed (ell_lower = ell_upper) or Uniform(ell_lower,
// ell_upper). eta = intercept + f + log_offset at the observed cells enters a
// Gaussian, Poisson (log link) or binomial (logit link) likelihood. Compile
// with the include path stan/include.
functions {
  #include gp.stanfunctions
}
data {
  // --- basis ---
  int<lower=1> M; // basis functions per dimension
  real<lower=1> c_boundary; // boundary factor: the domain is extended c times
  #include gp_prior_data.stan
  #include observation_cells_data.stan
  
  #include observation_values_data.stan
}
transformed data {
  check_observations(likelihood, counts, trials);
  int fixed = ell_lower == ell_upper; // 1: the lengthscale is not inferred
  int M_total = dim == 1 ? M : M * M; // number of basis functions
  real B = 0.5 * c_boundary; // half-width of the extended domain
  matrix[D, M_total] PHI; // eigenfunctions at the cells
  vector[M_total] omega2; // squared frequencies (the eigenvalues)
  {
    matrix[D, M] phi1;
    matrix[D, M] phi2;
    vector[M] lambda = square(linspaced_vector(M, 1, M) * pi() / (2 * B));
    for (m in 1 : M) {
      for (d in 1 : D) {
        phi1[d, m] = sin(sqrt(lambda[m]) * (x[d, 1] - 0.5 + B)) / sqrt(B);
        phi2[d, m] = dim == 2
                     ? sin(sqrt(lambda[m]) * (x[d, dim] - 0.5 + B)) / sqrt(B)
                     : 0;
      }
    }
    if (dim == 1) {
      PHI = phi1;
      omega2 = lambda;
    } else {
      for (m1 in 1 : M) {
        for (m2 in 1 : M) {
          PHI[ : , (m1 - 1) * M + m2] = phi1[ : , m1] .* phi2[ : , m2];
          omega2[(m1 - 1) * M + m2] = lambda[m1] + lambda[m2];
        }
      }
    }
  }
  matrix[N_obs, M_total] PHI_obs = PHI[obs_idx];
}
parameters {
  vector[M_total] beta; // standardised basis weights
  array[1 - fixed] real<lower=ell_lower, upper=ell_upper> ell_par; // lengthscale, if inferred
  real intercept; // mean of the linear predictor
  array[likelihood == 1 ? 1 : 0] real<lower=0> sigma; // gaussian noise sd
}
transformed parameters {
  real ell = fixed ? ell_lower : ell_par[1]; // lengthscale
}
model {
  vector[M_total] w = exp(0.5 * gp_log_spd(omega2, kernel, dim, ell, sigma_f))
                      .* beta;
  beta ~ std_normal();
  // ell: uniform on its bounds
  intercept ~ normal(intercept_prior_mean, intercept_prior_sd);
  sigma ~ normal(0, sigma_prior_scale);
  target += observations_log_density(intercept + PHI_obs * w + log_offset,
                                     likelihood, y, counts, trials, sigma);
}
generated quantities {
  vector[D] f = PHI
                * (exp(0.5 * gp_log_spd(omega2, kernel, dim, ell, sigma_f))
                   .* beta); // the field at every cell
  vector[N_obs] log_lik = observations_log_lik(intercept + f[obs_idx]
                                               + log_offset, likelihood, y,
                                               counts, trials, sigma); // pointwise log-likelihood
}

