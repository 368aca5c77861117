// The softmax class model of inpaint.stan on one piece of its parameter
// space: the region where class `dominant` has the largest class weight.
//
// The regions c = 1..C partition the space, and the inpainting posterior's
// well-separated modes sit in different regions, so each region is sampled
// on its own and the pieces are combined by their probabilities p(region c | y)
// (estimated from the draws; see surrogate/tasks/pieces/). Same decoder data
// as inpaint.stan (`surrogate export`), plus `dominant`. Compile with the
// include path stan/include.
functions {
  #include decoder.stanfunctions
  #include inpaint.stanfunctions
}
data {
  // --- the region ---
  int<lower=1> dominant; // the class with the largest weight here (1..C)
  #include decoder_data.stan
  #include inpaint_data.stan
}
transformed data {
  if (C < 2) {
    reject("C must be at least 2 (classes to partition by); found ", C);
  }
  if (dominant > C) {
    reject("dominant must be in 1..C = ", C, "; found ", dominant);
  }
  check_widths(L, H);
  check_noise(estimate_sigma, sigma_fixed, sigma_prior_scale);
  int N_mis = D - N_obs; // number of missing outputs
  array[N_mis] int mis_idx = complement_index(obs_idx, D);
  matrix[N_obs, H[L]] W_obs = W_out[obs_idx];
  vector[N_obs] b_obs = b_out[obs_idx];
}
parameters {
  vector[K] z; // latent code
  vector[C - 1] rest; // logits of the other classes
  real<lower=0> lead; // how far the dominant logit lies above max(rest)
  vector<lower=0>[estimate_sigma] sigma_est; // noise sd, if estimated
}
transformed parameters {
  real<lower=0> sigma = estimate_sigma ? sigma_est[1] : sigma_fixed;
  // theta of inpaint.stan: latent code, then class logits
  vector[K + C] theta = append_row(z, dominant_logits(rest, lead, dominant));
}
model {
  theta ~ std_normal(); // (rest, lead) -> logits has Jacobian 1
  sigma_est ~ normal(0, sigma_prior_scale);
  y_obs ~ normal(decoder_mean(decoder_input(theta, K, C), L, W1, b1, W2, b2,
                              W3, b3, W4, b4, W_obs, b_obs,
                              hidden_activation, output_activation),
                 sigma);
}
generated quantities {
  vector[C] class_probs; // class weights fed to the decoder
  vector[D] y_hat; // decoded mean at every position
  vector[N_mis] y_mis; // decoded mean at the missing positions
  vector[N_obs] log_lik; // pointwise log-likelihood of the observed values
  {
    vector[K + C] x = decoder_input(theta, K, C);
    class_probs = x[(K + 1) : (K + C)];
    y_hat = decoder_mean(x, L, W1, b1, W2, b2, W3, b3, W4, b4, W_out, b_out,
                         hidden_activation, output_activation);
    y_mis = y_hat[mis_idx];
    for (n in 1 : N_obs) {
      log_lik[n] = normal_lpdf(y_obs[n] | y_hat[obs_idx[n]], sigma);
    }
  }
}

