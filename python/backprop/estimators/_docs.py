"""The documentation MLPClassifier and MLPRegressor share: their parameters, attributes, and how
they differ from scikit-learn's MLPs of the same names."""

PARAMETERS = """
    Parameters (scikit-learn's names and defaults, plus dtype and n_threads)
    ----------
    hidden_layer_sizes : int or sequence of int, default (100,)
        Units per hidden layer; () gives no hidden layer (a linear model).
    activation : default 'relu'
        The hidden units' function: 'identity', 'logistic' (= 'sigmoid'), 'tanh', 'relu', and
        backprop's others: 'leaky_relu', 'elu', 'softplus', 'gelu'.
    solver : 'adam' (default), 'sgd' or 'lbfgs'
        'adam' and 'sgd' train mini-batch epochs natively (backprop.fit); 'lbfgs' is
        backprop.optim.LBFGS on the whole training set.
    alpha : float >= 0, default 1e-4
        L2 penalty on the weights W, not the biases, as in scikit-learn: the objective is the
        (weighted) mean loss plus alpha / (2 * n) * ||W||^2, n the number of samples (the sum
        of their weights when weighted). 'lbfgs' minimises exactly that. With 'sgd' and
        'adam', as in scikit-learn, each mini-batch adds alpha / (2 * its size) * ||W||^2 to
        its mean loss; backprop applies this as the optimizer's weight_decay = alpha /
        batch_size (divided by the mean sample weight), which differs in two ways: it decays
        the biases too (the native update treats the flat parameter buffer as one), and a
        shorter last batch is decayed like a full one.
    batch_size : int or 'auto', default 'auto'
        Samples per update of the stochastic solvers; 'auto' is min(200, n_samples). A size
        above the number of training samples warns and is clipped.
    learning_rate : 'constant' (default), 'invscaling' or 'adaptive'
        The step schedule of 'sgd': 'invscaling' sets it to learning_rate_init /
        (t_ + 1) ** power_t after each epoch; 'adaptive' divides it by 5 each time
        n_iter_no_change epochs pass without a tol improvement (instead of stopping), until
        it is at most 1e-6.
    learning_rate_init : float > 0, default 1e-3
        The step size of 'sgd' and 'adam'.
    power_t : float >= 0, default 0.5
        The exponent of 'invscaling'.
    max_iter : int >= 1, default 200
        Epochs for 'sgd' and 'adam' (each sample is used once per epoch); iterations for
        'lbfgs'. Reaching it without converging warns with ConvergenceWarning.
    shuffle : bool, default True
        Shuffle the samples every epoch ('sgd', 'adam').
    random_state : None, int, numpy RandomState or Generator, default None
        Seeds the weights, the shuffling and the early-stopping split. An int makes fit
        repeatable (bit for bit, for any number of threads); None draws a seed from NumPy's
        global RandomState, so np.random.seed makes runs repeatable too.
    tol : float >= 0, default 1e-4
        'sgd'/'adam': training stops once the loss (or, with early_stopping, the validation
        score) has failed to improve by tol for more than n_iter_no_change epochs in a row.
        'lbfgs': converged once max |gradient| <= tol.
    verbose : bool or int, default False
        Print the loss (and validation score) of each epoch to stdout.
    warm_start : bool, default False
        fit continues from the fitted weights (with a new optimizer, as scikit-learn) instead
        of starting over; the network's shape, activation and dtype must not have changed.
        loss_curve_ and t_ go on counting; n_iter_ counts this call's epochs.
    momentum : float in [0, 1), default 0.9
        Momentum of 'sgd'.
    nesterovs_momentum : bool, default True
        Nesterov momentum for 'sgd' (ignored when momentum is 0).
    early_stopping : bool, default False
        Hold out validation_fraction of the training data (stratified by class for
        single-label classification) and stop when its score (accuracy, or R^2) has not
        improved by tol for more than n_iter_no_change epochs; the weights of the best epoch
        are kept. 'sgd' and 'adam' only; partial_fit refuses it.
    validation_fraction : float in (0, 1), default 0.1
        The held-out share for early stopping: ceil(validation_fraction * n_samples) samples,
        at least 2.
    beta_1, beta_2 : float in [0, 1), default 0.9, 0.999
        Adam's moment decay rates.
    epsilon : float > 0, default 1e-8
        Adam's epsilon.
    n_iter_no_change : int >= 1, default 10
        Epochs without a tol improvement tolerated before stopping (see tol).
    max_fun : int >= 1, default 15000
        'lbfgs': the most loss-and-gradient evaluations (checked every 25 iterations, so it
        may be passed by up to that many iterations' evaluations).
    dtype : 'float32' (default) or 'float64'
        The precision the network computes in (scikit-learn's MLPs use X's dtype).
    n_threads : None or int >= 1, default None
        Threads of the native kernels during fit, partial_fit, predict and score; None
        leaves backprop's setting (backprop.set_num_threads, OMP_NUM_THREADS). The count is
        process-wide: it is set for the call and restored after it.
"""

ATTRIBUTES = """
    Attributes (after fit)
    ----------
    coefs_, intercepts_ : lists of arrays
        The weights (fan_in, fan_out) and biases of each layer: views into the network's flat
        parameter buffer (writing into them changes the model; assigning a list copies it in).
    loss_ : float
        The last epoch's loss (the L2 penalty included), in scikit-learn's scale.
    loss_curve_ : list of float
        The loss of each epoch ('sgd' and 'adam' only, as in scikit-learn).
    best_loss_ : float or None
        The lowest epoch loss ('sgd'/'adam'; None with early_stopping).
    validation_scores_ : list of float or None
        The validation score of each epoch (with early_stopping).
    best_validation_score_ : float or None
        The best of them; its weights are the ones kept.
    n_iter_ : int
        Epochs (or L-BFGS iterations) run by the last fit or partial_fit call.
    t_ : int
        Training samples seen by the stochastic solvers, over all calls (0 for 'lbfgs').
    n_layers_ : int
        Layers, input and output included (len(hidden_layer_sizes) + 2).
    n_outputs_ : int
        Output units.
    out_activation_ : str
        The output function: 'softmax', 'logistic' or 'identity'.
    n_features_in_ : int
        Features seen in fit; feature_names_in_ holds their names when X had string column
        names (a pandas DataFrame).
    network_ : backprop.Network
        The fitted network itself.
"""

DIFFERENCES = """
    Where this differs from scikit-learn
    ------------------------------------
    - Initialisation is the same: weights and biases are drawn as scikit-learn draws them
      (Glorot-uniform, from RandomState(random_state) in the same order), so an int
      random_state starts from scikit-learn's initial weights (rounded to dtype). The
      shuffling order is backprop's own, so with shuffle=True the runs part after one epoch.
    - alpha with 'sgd'/'adam': see alpha above (the biases are decayed too).
    - Adam adds epsilon to the bias-corrected sqrt(v_hat) (as torch.optim.Adam); scikit-learn
      adds it to sqrt(v) and folds the correction into the step. SGD's momentum buffer holds
      gradients (torch's form): the same steps while the learning rate is constant.
    - L-BFGS is backprop.optim.LBFGS (strong Wolfe line search), not SciPy's L-BFGS-B; it also
      stops when an iteration changes the loss, or every weight, by less than 2.2e-9.
    - sample_weight: the weights are rescaled to mean 1, so each mini-batch's loss is its
      weighted sum over the batch size (scikit-learn divides by the batch's weight sum).
    - The no-improvement count and the best loss or score it compares with restart at each
      fit call (scikit-learn keeps them across warm-started fits); partial_fit carries them
      on. The early-stopping split is backprop's own (of the same size).
    - predict_proba and regression predictions are float64 whatever the dtype.
    - Pickling stores the network's parameters and the stochastic optimizer's state, and
      rebuilds the native engine when loaded.
"""
