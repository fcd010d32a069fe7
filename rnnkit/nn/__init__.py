"""rnnkit.nn: recurrent cells and layers with torch.nn numerics and names.

>>> layer = LSTM(32, 256, num_layers=2, bidirectional=True, batch_first=True)
>>> y, (h, c) = layer(x, lengths=lengths)      # x: (batch, time, 32)
>>> y_t, state = LSTM(32, 64).step(x_t, state)  # streaming, x_t: (batch, 32)
>>> model = from_keras("model.keras")           # Keras 3 SimpleRNN/LSTM/GRU/Bidirectional/Dense
"""
from rnnkit.nn.cells import Cell, GRUCell, I2HCell, LSTMCell, RNNCell
from rnnkit.nn.interop import from_keras, to_keras
from rnnkit.nn.keras_cells import KerasGRUCell
from rnnkit.nn.layers import GRU, LSTM, RNN, Recurrent, SequenceLayer, SimpleRNN
from rnnkit.nn.registry import cell_names, make_layer

__all__ = ["Cell", "RNNCell", "LSTMCell", "GRUCell", "I2HCell", "KerasGRUCell", "RNN", "SimpleRNN", "LSTM", "GRU",
           "Recurrent", "SequenceLayer", "make_layer", "cell_names", "from_keras", "to_keras"]
