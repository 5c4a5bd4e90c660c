"""Train XOR from scratch on the board (or the unix port) and print what it learned."""

from nanonn import Dense, Network

X = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
Y = [[0.0], [1.0], [1.0], [0.0]]


def report(epoch, loss):
    if epoch % 250 == 0:
        print("epoch %4d  loss %.5f" % (epoch, loss))


def main():
    net = Network(Dense(4, inputs=2, activation="tanh"), Dense(1, activation="sigmoid"), seed=3)
    net.fit(X, Y, epochs=1500, rate=0.5, seed=1, callback=report)
    loss, accuracy = net.evaluate(X, Y)
    print("trained: mse %.5f, accuracy %d%%" % (loss, accuracy * 100))
    for x in X:
        print("%d xor %d -> %.3f" % (x[0], x[1], net.predict(x)[0]))


main()
